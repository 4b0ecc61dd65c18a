"""CrowdHuman (Shao et al. 2018) as detection-only data for hybrid pre-training.

On disk, under $DETECTRON2_DATASETS (default `datasets/`), as released:
    crowdhuman/annotation_train.odgt, annotation_val.odgt
    crowdhuman/Images/<ID>.jpg          (CrowdHuman_train0{1,2,3}.zip and CrowdHuman_val.zip unpacked)
An `.odgt` file holds one JSON object per line: {"ID": str, "gtboxes": [{"tag": "person" or
"mask", "fbox": [x, y, w, h] (full body), "vbox", "hbox", "extra": {"ignore": 0 or 1, ...}}]}.

Records: the full-body boxes (`fbox`, clipped to the image) of the `person` entries not marked
ignore. Entries tagged `mask` (crowds, reflections) or with `extra.ignore` = 1 are ignore
regions: they are kept out of the annotations and listed under "ignore_regions" (XYXY, [M, 4]) so a
detector can skip them. Every box is its own identity (Fig. 3b): ids 0..N-1 over the split, in
file order; records carry "instance_ids": True. Registered: `crowdhuman_train`, `crowdhuman_val`.
"""
import json
import os

import numpy as np

from .coco_persons import assign_person_ids
from .common import IGNORE_REGIONS, datasets_root, make_record, read_image_size, register_person_search, require_path, xywh_to_xyxy
from .crops import INSTANCE_IDS

CROWDHUMAN_SPLITS = {"crowdhuman_train": "annotation_train.odgt", "crowdhuman_val": "annotation_val.odgt"}
PERSON_TAG = "person"


def read_odgt(odgt_file):
    """The JSON objects of an `.odgt` file; ValueError naming the line if one does not parse."""
    entries = []
    with open(require_path(odgt_file, "CrowdHuman annotations", "See datasets/README.md (crowdhuman/).")) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{odgt_file}:{number}: not a JSON line: {e}") from e
            if not isinstance(entry, dict) or not {"ID", "gtboxes"} <= set(entry):
                raise ValueError(f"{odgt_file}:{number}: a CrowdHuman entry needs 'ID' and 'gtboxes'.")
            entries.append(entry)
    return entries


def is_ignored(gtbox):
    return gtbox.get("tag") != PERSON_TAG or gtbox.get("extra", {}).get("ignore", 0) == 1


def load_crowdhuman(odgt_file, image_dir):
    """Detection records of one `.odgt` file (see the module docstring)."""
    records = []
    for entry in read_odgt(odgt_file):
        file_name = os.path.join(image_dir, f"{entry['ID']}.jpg")
        height, width = read_image_size(require_path(file_name, "CrowdHuman image", f"Unpack the images into {image_dir}."))
        people = [b["fbox"] for b in entry["gtboxes"] if not is_ignored(b)]
        ignored = [b["fbox"] for b in entry["gtboxes"] if is_ignored(b)]
        records.append(make_record(
            file_name, entry["ID"], height, width, xywh_to_xyxy(people), np.zeros(len(people)),
            **{IGNORE_REGIONS: xywh_to_xyxy(ignored).astype(np.float32), INSTANCE_IDS: True},
        ))
    return assign_person_ids(records, unique_ids=True)  # one identity per kept box


def register_all_crowdhuman(root=None):
    """Register CROWDHUMAN_SPLITS; `root` (default $DETECTRON2_DATASETS) is resolved at load time."""
    for name, odgt in CROWDHUMAN_SPLITS.items():

        def load(odgt=odgt):
            base = os.path.join(root if root is not None else datasets_root(), "crowdhuman")
            return load_crowdhuman(os.path.join(base, odgt), os.path.join(base, "Images"))

        register_person_search(name, load, domain="source")
