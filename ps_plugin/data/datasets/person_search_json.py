"""COCO json with `person_id` (the format mmdet-based person-search code uses, e.g. PRW's
`train_pid.json` / `test_pid.json`).

On disk:
    {"images": [{"id": 0, "file_name": "c1s2_071096.jpg", "width": 1920, "height": 1080,
                 "camera_id": 1 (optional)}, ...],
     "annotations": [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [x, y, w, h],
                      "iscrowd": 0, "person_id": 17}, ...],
     "categories": [{"id": 1, "name": "person"}]}

Loaded as one record per image (docs/DATA_RECORDS.md), in json order of image ids:
- only annotations of the category named "person" are kept, crowd boxes (`iscrowd=1`) are dropped;
- `bbox` xywh -> XYXY_ABS floats, cleaned by `common.clean_boxes`;
- any negative `person_id` (-1, -2, ...) -> -1 (unlabeled);
- `image_id` is the json's `file_name` (the image name), `file_name` is joined to `image_root`;
- `camera_id`: the image's `camera_id` (or `cam_id`) field when the json has one; otherwise the
  first group of `camera_regex` matched against the file's base name (the default matches
  PRW-style names `c<camera>s<sequence>_<frame>.jpg`); otherwise -1.
"""
import logging
import os
import re

import numpy as np
from pycocotools.coco import COCO

from .common import UNLABELED, make_record, register_person_search, require_path, xywh_to_xyxy

logger = logging.getLogger(__name__)

PRW_CAMERA_REGEX = r"^c(\d+)s\d+_"
_CAMERA_FIELDS = ("camera_id", "cam_id")


def load_coco(json_file):
    """Parse a COCO json with pycocotools; a missing file raises FileNotFoundError naming it."""
    require_path(json_file, "COCO json annotation file", "Check the path or $DETECTRON2_DATASETS (see datasets/README.md).")
    return COCO(json_file)


def person_category_id(coco, json_file):
    """Id of the category named "person"; ValueError naming the file when there is none."""
    ids = coco.getCatIds(catNms=["person"])
    if not ids:
        names = [c["name"] for c in coco.loadCats(coco.getCatIds())]
        raise ValueError(f"{json_file}: no category named 'person' (categories: {names}). Name the person category 'person'.")
    return ids[0]


def image_camera_id(image, camera_regex):
    """Camera of one json image dict: its camera field, else `camera_regex` on the base name, else -1."""
    for field in _CAMERA_FIELDS:
        if field in image:
            return int(image[field])
    if camera_regex is not None:
        match = re.search(camera_regex, os.path.basename(image["file_name"]))
        if match:
            return int(match.group(1))
    return -1


def annotation_person_ids(annotations, json_file, require_person_id):
    """int64 [N] person ids of json annotations; negatives -> -1; missing -> -1 unless required."""
    person_ids = []
    for ann in annotations:
        if "person_id" not in ann and require_person_id:
            raise ValueError(
                f"{json_file}: annotation id {ann.get('id')} has no 'person_id'. Add person_id to every "
                "annotation (-1 = unlabeled), or load plain COCO instances with coco_persons.load_coco_persons."
            )
        person_ids.append(ann.get("person_id", UNLABELED))
    person_ids = np.asarray(person_ids, dtype=np.int64)
    person_ids[person_ids < 0] = UNLABELED
    return person_ids


def load_person_search_json(json_file, image_root, camera_regex=PRW_CAMERA_REGEX, require_person_id=True):
    """Records (one per json image) from a COCO json whose annotations carry `person_id`.

    Args:
        json_file: path of the json.
        image_root: folder the json's `file_name`s are relative to.
        camera_regex: regex whose group 1 is the camera, matched on the image's base name when
            the json has no camera field; None: camera -1.
        require_person_id: raise on an annotation without `person_id` (False: it becomes -1).
    Returns:
        list of records; boxes XYXY_ABS, person_id -1 for unlabeled.
    """
    coco = load_coco(json_file)
    category = person_category_id(coco, json_file)
    records = []
    for image in coco.loadImgs(sorted(coco.getImgIds())):
        annotations = [
            a for a in coco.imgToAnns[image["id"]] if a["category_id"] == category and not a.get("iscrowd", 0)
        ]
        boxes = xywh_to_xyxy([a["bbox"] for a in annotations])
        records.append(
            make_record(
                file_name=os.path.join(image_root, image["file_name"]),
                image_id=image["file_name"],
                height=image.get("height"),
                width=image.get("width"),
                boxes_xyxy=boxes,
                person_ids=annotation_person_ids(annotations, json_file, require_person_id),
                camera_id=image_camera_id(image, camera_regex),
            )
        )
    logger.info(f"Loaded {len(records)} images, {sum(len(r['annotations']) for r in records)} person boxes from {json_file}")
    return records


def register_person_search_json(name, json_file, image_root, domain="source", camera_regex=PRW_CAMERA_REGEX, **metadata):
    """Register a person_id COCO json under `name`; nothing is read until DatasetCatalog.get(name).

    `metadata` goes to MetadataCatalog (e.g. `gallery_dataset=..., protocol="prw"` for a query set).
    """
    register_person_search(
        name,
        lambda: load_person_search_json(json_file, image_root, camera_regex=camera_regex),
        domain=domain,
        json_file=json_file,
        image_root=image_root,
        **metadata,
    )
