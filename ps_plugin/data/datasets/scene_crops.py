"""Person crops cut from any registered person-search or MOT set, without writing files.

Each box of the source set's records becomes a crop record (crops.py) pointing at the scene image,
with "crop_box" = the box; the pre-training mapper cuts it out at load time.

Identities: "keep": labelled boxes keep their identity (renumbered 0..K-1 in sorted order);
unlabelled boxes (person_id -1) follow, one identity each ("instance_ids": True). "each": every crop
is its own identity (the source's labels hidden: the set becomes unlabelled crops).

Registered: `<source>_crops` for every name in SCENE_CROP_SOURCES ("keep"), e.g. `realmini_train_crops`.
"""
from detectron2.data import DatasetCatalog

from .common import UNLABELED
from .crops import INSTANCE_IDS, contiguous_ids, make_crop_record, register_crops

SCENE_CROP_SOURCES = ("cuhk_sysu_train", "prw_train", "realmini_train", "synthps_train")
IDENTITY_MODES = ("keep", "each")


def load_scene_crops(source_name, identities="keep", min_height=0.0):
    """Crop records of every box of `source_name` at least `min_height` px high (order: image, box)."""
    if identities not in IDENTITY_MODES:
        raise ValueError(f"Scene crops of '{source_name}': identities must be one of {IDENTITY_MODES}, got {identities!r}.")
    boxes = [
        (record, index, ann)
        for record in DatasetCatalog.get(source_name)
        for index, ann in enumerate(record["annotations"])
        if ann["bbox"][3] - ann["bbox"][1] >= min_height
    ]
    if not boxes:
        raise ValueError(f"Scene crops: '{source_name}' has no person box at least {min_height} px high.")
    keep = identities == "keep"
    labelled = contiguous_ids(a["person_id"] for _, _, a in boxes if keep and a["person_id"] != UNLABELED)
    crops, next_id = [], len(labelled)
    for record, index, ann in boxes:
        own_identity = ann["person_id"] not in labelled
        crops.append(
            make_crop_record(
                record["file_name"], f"{record['image_id']}#{index}", next_id if own_identity else labelled[ann["person_id"]],
                record.get("camera_id", -1), ann["bbox"], record["height"], record["width"],
                **{INSTANCE_IDS: own_identity},
            )
        )
        next_id += own_identity
    return crops


def register_scene_crops(name, source_name, identities="keep", min_height=0.0):
    """Register the crops of registered set `source_name` as `name`; read when `name` is first loaded."""
    register_crops(name, lambda: load_scene_crops(source_name, identities, min_height), source_dataset=source_name)


def register_all_scene_crops():
    for source in SCENE_CROP_SOURCES:
        register_scene_crops(f"{source}_crops", source)
