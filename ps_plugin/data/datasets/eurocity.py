"""EuroCity Persons (ECP; Braun et al., TPAMI 2019) as detection-only data for hybrid pre-training.

On disk, under $DETECTRON2_DATASETS (default `datasets/`), as released (day and night parts):
    ECP/{day,night}/img/{train,val}/<city>/<name>.png
    ECP/{day,night}/labels/{train,val}/<city>/<name>.json
A label file is one frame: {"identity": "frame", "imagewidth": W, "imageheight": H, "children":
[{"identity": str, "x0", "y0", "x1", "y1" (pixels), "tags": [...], "children": [...]}, ...]}.
Tags: "occluded>10|40|80", "truncated>10|40|80" (per cent hidden / outside the image, at least),
"depiction" (a person on a poster, a mirror image), "sitting-lying", "behind-glass",
"unsure_orientation", "skating".

Records: the boxes of the `pedestrian` and `rider` children (riders are people on a vehicle; the
vehicle is the rider's own child and is not read) are people, unless ECP's evaluation would not
count them; those, and the don't-care classes `person-group-far-away` and
`rider+vehicle-group-far-away`, become "ignore_regions" (XYXY, [M, 4]: neither people nor
background, see PS.DATA.IGNORE_REGIONS). Vehicles and their groups are skipped. ECP's evaluation
(its devkit's ParamsFactory) ignores a person box lower than a minimum height, or at least a
maximum per cent occluded or truncated, and pedestrians tagged `sitting-lying` or `behind-glass`;
its settings are ECP_SETTINGS ("all": 20 px, 80 %; "reasonable": 40 px, 40 %). Depictions
(`depictions`): "ignore" (default) makes every depiction-tagged box an ignore region, as
CityPersons does for people on posters; "background" drops them, as ECP's evaluation does with
depicted far-away groups (a detection there is a false positive); "as_labelled" reads them as
untagged boxes. Every person box is its own identity (Fig. 3b): ids 0..N-1 over the split, in
file order; records carry "instance_ids": True. Registered: `ecp_{day,night}_{train,val}` (the
"all" setting) and `ecp_{day,night}_{train,val}_reasonable`.
"""
import glob
import json
import os
import re

import numpy as np

from .coco_persons import assign_person_ids
from .common import IGNORE_REGIONS, datasets_root, make_record, register_person_search, require_path
from .crops import INSTANCE_IDS

PERSON_IDENTITIES = ("pedestrian", "rider")
IGNORE_IDENTITIES = ("person-group-far-away", "rider+vehicle-group-far-away")
# ECP's evaluation settings: a person box counts when at least min_height px high and less than
# max_occlusion % occluded and truncated (one limit for both, as ECP's occ_limits).
ECP_SETTINGS = {"all": {"min_height": 20, "max_occlusion": 80}, "reasonable": {"min_height": 40, "max_occlusion": 40}}
ECP_SPLITS = {
    f"ecp_{time}_{split}" + ("" if setting == "all" else f"_{setting}"): (time, split, setting)
    for time in ("day", "night")
    for split in ("train", "val")
    for setting in ECP_SETTINGS
}
PEDESTRIAN_IGNORE_TAGS = ("sitting-lying", "behind-glass")
DEPICTION_TAG = "depiction"
DEPICTIONS = ("ignore", "background", "as_labelled")
HIDDEN_TAG = re.compile(r"^(occluded|truncated)>(\d+)$")


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


def hidden_percent(tags):
    """The largest occlusion or truncation level (per cent) among an ECP box's tags, 0 if none."""
    return max((int(match.group(2)) for match in map(HIDDEN_TAG.match, tags) if match), default=0)


def ecp_role(child, min_height, max_occlusion, depictions):
    """The role of one child of a frame: "person", "ignore" or None (not read: background); see the module docstring."""
    identity, tags = child.get("identity"), child.get("tags", [])
    if identity not in PERSON_IDENTITIES + IGNORE_IDENTITIES:
        return None
    if DEPICTION_TAG in tags and depictions != "as_labelled":
        return "ignore" if depictions == "ignore" else None
    if identity in IGNORE_IDENTITIES:
        return "ignore"
    counted = (
        child["y1"] - child["y0"] >= min_height
        and hidden_percent(tags) < max_occlusion
        and not (identity == "pedestrian" and set(tags) & set(PEDESTRIAN_IGNORE_TAGS))
    )
    return "person" if counted else "ignore"


def _boxes(children, roles, role):
    """[N, 4] float64 XYXY of the children given `role`."""
    rows = [[c["x0"], c["y0"], c["x1"], c["y1"]] for c, r in zip(children, roles) if r == role]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def load_ecp(
    label_dir, image_dir, min_height=ECP_SETTINGS["all"]["min_height"],
    max_occlusion=ECP_SETTINGS["all"]["max_occlusion"], depictions="ignore",
):
    """Detection records of one ECP split: label_dir = .../labels/<split>, image_dir = .../img/<split>.
    The defaults are ECP's "all" setting (ECP_SETTINGS); see the module docstring for `depictions`."""
    if depictions not in DEPICTIONS:
        raise ValueError(f"ECP: depictions must be one of {DEPICTIONS}, got {depictions!r}.")
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
        roles = [ecp_role(c, min_height, max_occlusion, depictions) for c in children]
        people = _boxes(children, roles, "person")
        records.append(make_record(
            file_name, city_name.replace(os.sep, "/"), frame["imageheight"], frame["imagewidth"], people,
            np.zeros(len(people)),
            **{IGNORE_REGIONS: _boxes(children, roles, "ignore").astype(np.float32), INSTANCE_IDS: True},
        ))
    return assign_person_ids(records, unique_ids=True)


def register_all_ecp(root=None):
    """Register ECP_SPLITS; `root` (default $DETECTRON2_DATASETS) is resolved at load time."""
    for name, (time, split, setting) in ECP_SPLITS.items():

        def load(time=time, split=split, setting=setting):
            base = os.path.join(root if root is not None else datasets_root(), "ECP", time)
            return load_ecp(os.path.join(base, "labels", split), os.path.join(base, "img", split), **ECP_SETTINGS[setting])

        register_person_search(name, load, domain="source")
