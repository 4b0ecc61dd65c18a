"""COCO-Persons: COCO 2017 instances reduced to the `person` category (detection / pre-training data).

On disk, under $DETECTRON2_DATASETS (default `datasets/`):
    coco/annotations/instances_{train,val}2017.json
    coco/{train,val}2017/*.jpg

Records (docs/DATA_RECORDS.md): person boxes only; crowd boxes (`iscrowd=1`) are dropped; images
without a person are kept with empty annotations unless `drop_empty=True`.

Registered names:
- `coco_persons_train`, `coco_persons_val`: every box has person_id -1 (COCO has no identities).
- `coco_persons_train_inst`: every box is its own identity (person_id 0..N-1, contiguous over
  the kept boxes in image order), the labels SPNet's query-centric pre-training needs when each
  instance is its own class.
"""
import os

from .common import UNLABELED, datasets_root, register_person_search
from .person_search_json import load_person_search_json

COCO_PERSONS_SPLITS = {
    "coco_persons_train": ("coco/train2017", "coco/annotations/instances_train2017.json", False),
    "coco_persons_val": ("coco/val2017", "coco/annotations/instances_val2017.json", False),
    "coco_persons_train_inst": ("coco/train2017", "coco/annotations/instances_train2017.json", True),
}


def assign_person_ids(records, unique_ids):
    """In place: person_id -1 on every box, or (unique_ids) a distinct id 0..N-1 per box."""
    next_id = 0
    for record in records:
        for ann in record["annotations"]:
            ann["person_id"] = next_id if unique_ids else UNLABELED
            next_id += 1
    return records


def load_coco_persons(json_file, image_root, unique_ids=False, drop_empty=False):
    """Person records from a COCO instances json.

    Args:
        json_file: COCO instances json (needs a category named "person").
        image_root: folder of the json's images.
        unique_ids: give each box its own person_id (0..N-1) instead of -1.
        drop_empty: drop images without a (non-crowd) person box.
    """
    records = load_person_search_json(json_file, image_root, camera_regex=None, require_person_id=False)
    if drop_empty:
        records = [r for r in records if r["annotations"]]
    return assign_person_ids(records, unique_ids)


def register_all_coco_persons(root=None, drop_empty=False):
    """Register COCO_PERSONS_SPLITS; `root` (default $DETECTRON2_DATASETS) is resolved at load time."""
    for name, (image_dir, json_path, unique_ids) in COCO_PERSONS_SPLITS.items():

        def load(image_dir=image_dir, json_path=json_path, unique_ids=unique_ids):
            base = root if root is not None else datasets_root()
            return load_coco_persons(
                os.path.join(base, json_path), os.path.join(base, image_dir), unique_ids=unique_ids, drop_empty=drop_empty
            )

        register_person_search(name, load, domain="source")
