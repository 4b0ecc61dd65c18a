from .launch import launch
from .trainer import PersonSearchTrainer, group_test_datasets

__all__ = ["launch", "PersonSearchTrainer", "group_test_datasets"]
