from .defaults import add_ps_config
from .setup_cfg import get_ps_cfg, setup_cfg
from .teacher import load_teacher_cfg

__all__ = ["add_ps_config", "get_ps_cfg", "load_teacher_cfg", "setup_cfg"]
