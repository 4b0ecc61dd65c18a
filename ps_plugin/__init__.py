"""ps_plugin: person search as a Detectron2 plugin.

Importing the package registers every dataset, meta-architecture and head. It reads no file
and opens no connection: dataset loaders run only when DatasetCatalog.get(name) calls them.
"""
from . import data  # noqa: F401  (registers datasets)
from . import modeling  # noqa: F401  (registers meta-architectures, heads, backbones)
from .config import add_ps_config, get_ps_cfg, setup_cfg

__version__ = "0.1.0"

__all__ = ["add_ps_config", "get_ps_cfg", "setup_cfg", "__version__"]
