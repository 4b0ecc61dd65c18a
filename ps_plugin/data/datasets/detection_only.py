"""Any registered person-search or MOT set as detection-only data (hybrid pre-training, Fig. 3b):
its identities are hidden and every box becomes its own identity 0..N-1 (coco_persons'
`assign_person_ids`); records carry "instance_ids": True.

Registered: `<source>_det` for every name in DETECTION_ONLY_SOURCES, e.g. `synthps_train_det`.
"""
import copy

from detectron2.data import DatasetCatalog

from .coco_persons import assign_person_ids
from .common import register_person_search
from .crops import INSTANCE_IDS

DETECTION_ONLY_SOURCES = ("cuhk_sysu_train", "prw_train", "realmini_train", "synthps_train")


def load_detection_only(source_name):
    """The records of `source_name` with one identity per box and "instance_ids": True."""
    records = [dict(copy.deepcopy(r), **{INSTANCE_IDS: True}) for r in DatasetCatalog.get(source_name)]
    for record in records:
        record.pop("dataset_name", None)  # the new set's name is set at registration
    return assign_person_ids(records, unique_ids=True)


def register_all_detection_only():
    for source in DETECTION_ONLY_SOURCES:
        register_person_search(f"{source}_det", lambda source=source: load_detection_only(source), source_dataset=source)
