from .defaults import add_ps_config
from .setup_cfg import get_ps_cfg, setup_cfg

__all__ = ["add_ps_config", "get_ps_cfg", "setup_cfg"]
