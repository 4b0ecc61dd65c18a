"""Person-search datasets. `import ps_plugin` registers every builtin dataset lazily (builtin.py);
this package's own import loads nothing, so its numpy-only modules (cuhk_sysu_protocol, matlab,
record_fields) work without torch or Detectron2."""
from ...utils.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__, {"register_person_search": ".common", "register_person_search_json": ".person_search_json"}
)
