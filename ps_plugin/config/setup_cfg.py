"""One `setup_cfg(args)` for train_net.py, the demo, the search CLI and the tests."""
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
    if freeze:
        cfg.freeze()
    return cfg
