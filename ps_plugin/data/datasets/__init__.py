"""Person-search datasets. Importing this package registers every builtin dataset lazily."""
from . import builtin  # noqa: F401  (registration)
from .common import register_person_search
from .person_search_json import register_person_search_json

__all__ = ["register_person_search", "register_person_search_json"]
