from . import datasets  # noqa: F401  (registers every builtin dataset)
