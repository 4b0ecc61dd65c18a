"""Package attributes imported on first access (PEP 562), so that importing a package for one of
its numpy-only modules does not import torch or Detectron2 through its siblings."""
import importlib


def lazy_exports(package, exports):
    """(__getattr__, __all__) for `package` (its __name__) exporting `exports` {name: ".module"}."""

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name], package), name)

    return __getattr__, sorted(exports)
