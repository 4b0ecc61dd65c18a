"""EuroCity Persons (ECP; Braun et al., TPAMI 2019) as detection-only data for hybrid pre-training.

On disk, under $DETECTRON2_DATASETS (default `datasets/`), as released (day and night parts):
    ECP/{day,night}/img/{train,val}/<city>/<name>.png
    ECP/{day,night}/labels/{train,val}/<city>/<name>.json
A label file is one frame: {"identity": "frame", "imagewidth": W, "imageheight": H, "children":
[{"identity": str, "x0", "y0", "x1", "y1" (pixels), "tags": [...], "children": [...]}, ...]}.

Records: the boxes of the `pedestrian` and `rider` children (riders are people on a vehicle; the
vehicle is the rider's own child and is not read). `person-group-far-away` and
`rider+vehicle-group-far-away` (the benchmark's don't-care classes) become "ignore_regions" (XYXY,
[M, 4]). Vehicles and their groups are skipped; tags (occlusion, truncation) are not read. Every
box is its own identity (Fig. 3b): ids 0..N-1 over the split, in file order; records carry
"instance_ids": True. Registered: `ecp_{day,night}_{train,val}`.
"""
import glob
import json
import os

import numpy as np

from .coco_persons import assign_person_ids
from .common import IGNORE_REGIONS, datasets_root, make_record, register_person_search, require_path
from .crops import INSTANCE_IDS

ECP_SPLITS = {f"ecp_{time}_{split}": (time, split) for time in ("day", "night") for split in ("train", "val")}
PERSON_IDENTITIES = ("pedestrian", "rider")
IGNORE_IDENTITIES = ("person-group-far-away", "rider+vehicle-group-far-away")


def read_ecp_frame(label_file):
    """The frame object of one ECP label file; ValueError naming the file when it is not one."""
    with open(label_file) as f:
        try:
            frame = json.load(f)
        except ValueError as e:
            raise ValueError(f"{label_file}: not a JSON file: {e}") from e
    if not isinstance(frame, dict) or frame.get("identity") != "frame" or not {"imagewidth", "imageheight"} <= set(frame):
        raise ValueError(
            f"{label_file}: an ECP label file holds one object with \"identity\": \"frame\", \"imagewidth\", "
            "\"imageheight\" and \"children\"."
        )
    return frame


def _boxes(children, identities):
    """[N, 4] float64 XYXY of the children whose identity is in `identities`."""
    rows = [[c["x0"], c["y0"], c["x1"], c["y1"]] for c in children if c.get("identity") in identities]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def load_ecp(label_dir, image_dir):
    """Detection records of one ECP split: label_dir = .../labels/<split>, image_dir = .../img/<split>."""
    require_path(label_dir, "ECP labels", "See datasets/README.md (ECP/).")
    label_files = sorted(glob.glob(os.path.join(label_dir, "*", "*.json")))
    if not label_files:
        raise FileNotFoundError(f"No ECP label file <city>/<name>.json under '{label_dir}'. See datasets/README.md (ECP/).")
    records = []
    for label_file in label_files:
        frame = read_ecp_frame(label_file)
        city_name = os.path.relpath(os.path.splitext(label_file)[0], label_dir)
        file_name = os.path.join(image_dir, f"{city_name}.png")
        require_path(file_name, "ECP image", f"Unpack the ECP images into {image_dir}.")
        children = frame.get("children", [])
        people = _boxes(children, PERSON_IDENTITIES)
        records.append(make_record(
            file_name, city_name.replace(os.sep, "/"), frame["imageheight"], frame["imagewidth"], people,
            np.zeros(len(people)),
            **{IGNORE_REGIONS: _boxes(children, IGNORE_IDENTITIES).astype(np.float32), INSTANCE_IDS: True},
        ))
    return assign_person_ids(records, unique_ids=True)


def register_all_ecp(root=None):
    """Register ECP_SPLITS; `root` (default $DETECTRON2_DATASETS) is resolved at load time."""
    for name, (time, split) in ECP_SPLITS.items():

        def load(time=time, split=split):
            base = os.path.join(root if root is not None else datasets_root(), "ECP", time)
            return load_ecp(os.path.join(base, "labels", split), os.path.join(base, "img", split))

        register_person_search(name, load, domain="source")
