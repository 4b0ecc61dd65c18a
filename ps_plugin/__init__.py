"""ps_plugin: person search as a Detectron2 plugin.

Importing the package registers every dataset, meta-architecture and head. It reads no file
and opens no connection: dataset loaders run only when DatasetCatalog.get(name) calls them.

With the environment variable PS_PLUGIN_SKIP_REGISTRATION=1 nothing is registered and neither
torch nor Detectron2 is imported: only the numpy evaluation code (ps_plugin.evaluation's protocols,
results files, ps_plugin.data.datasets.cuhk_sysu_protocol) is usable. tools/evaluate_results.py
starts this way.
"""
import os

from .utils.lazy_exports import lazy_exports

__version__ = "0.1.0"

__getattr__, __all__ = lazy_exports(
    __name__, {"add_ps_config": ".config", "get_ps_cfg": ".config", "setup_cfg": ".config"}
)
__all__ += ["__version__"]

if os.environ.get("PS_PLUGIN_SKIP_REGISTRATION") != "1":
    from .data.datasets import builtin  # noqa: F401  (registers datasets)
    from . import modeling  # noqa: F401  (registers meta-architectures, heads, backbones)
