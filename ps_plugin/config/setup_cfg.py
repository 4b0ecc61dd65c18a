"""One `setup_cfg(args)` for train_net.py, the demo, the search CLI and the tests."""
import os

from detectron2.config import get_cfg

from ps_plugin.config.defaults import add_ps_config
from ps_plugin.utils.compiled_ops import check_compiled_ops


def get_ps_cfg():
    """A Detectron2 config with every `cfg.PS` node added."""
    cfg = get_cfg()
    add_ps_config(cfg)
    return cfg


def setup_cfg(args=None, config_file=None, opts=(), freeze=True):
    """Build the config from `args.config_file` / `args.opts` (argparse) or the keyword arguments.

    Raises a clear error when the config needs a compiled Detectron2 op the installed build lacks.
    """
    if args is not None:
        config_file = getattr(args, "config_file", config_file)
        opts = getattr(args, "opts", opts) or ()
    cfg = get_ps_cfg()
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    check_compiled_ops(cfg)
    check_local_weights(cfg)
    if freeze:
        cfg.freeze()
    return cfg


def check_local_weights(cfg):
    """MODEL.WEIGHTS must be empty or an existing local file: nothing is ever downloaded."""
    path = cfg.MODEL.WEIGHTS
    if path and not os.path.isfile(os.path.expanduser(path)):
        raise FileNotFoundError(
            f"MODEL.WEIGHTS='{path}' is not a local file. Give the path of a checkpoint on this machine "
            "(tools/convert_pretrained.py makes one from a torchvision/timm state dict); nothing is downloaded."
        )
