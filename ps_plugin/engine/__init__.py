from .checkpointer import PersonSearchCheckpointer
from .launch import launch
from .trainer import PersonSearchTrainer, group_test_datasets

__all__ = ["PersonSearchCheckpointer", "launch", "PersonSearchTrainer", "group_test_datasets"]
