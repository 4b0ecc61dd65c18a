"""The PSDiff teacher's config. A full config needs `get_ps_cfg` (every PS node), which modeling/
cannot import (config/ imports the methods' `add_*_config`, so the dependency runs config -> modeling);
the engine loads it here and passes it to the model (PersonSearchTrainer.build_model)."""
import os

from .setup_cfg import get_ps_cfg

__all__ = ["load_teacher_cfg"]


def load_teacher_cfg(cfg):
    """The teacher config of a PSDiff cfg, or None.

    Returns every default plus PS.PSDIFF.TEACHER.CONFIG_FILE, with MODEL.WEIGHTS =
    PS.PSDIFF.TEACHER.WEIGHTS and cfg's MODEL.DEVICE; None for another meta-architecture or when
    CONFIG_FILE names no local file (inference needs no teacher; a training step then raises an
    error naming the key).
    """
    config_file = cfg.PS.PSDIFF.TEACHER.CONFIG_FILE
    if cfg.MODEL.META_ARCHITECTURE != "PSDiff" or not os.path.isfile(os.path.expanduser(config_file)):
        return None
    teacher_cfg = get_ps_cfg()
    teacher_cfg.merge_from_file(os.path.expanduser(config_file))
    teacher_cfg.MODEL.WEIGHTS = cfg.PS.PSDIFF.TEACHER.WEIGHTS
    teacher_cfg.MODEL.DEVICE = cfg.MODEL.DEVICE
    return teacher_cfg
