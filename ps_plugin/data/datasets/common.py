"""Helpers every person-search dataset loader shares: paths, box cleaning, records, registration.

A record (one image) follows Detectron2's standard dataset dict:
    {"file_name": str, "image_id": str (image name), "height": int, "width": int,
     "camera_id": int (-1 unknown),
     "annotations": [{"bbox": [x1, y1, x2, y2], "bbox_mode": BoxMode.XYXY_ABS,
                      "category_id": 0, "person_id": int (-1 = unlabeled)}]}
`register_person_search` adds "dataset_name" and "domain" to every record it returns.
"""
import functools
import logging
import os

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from .record_fields import IGNORE_REGIONS, UNLABELED, xywh_to_xyxy  # noqa: F401  (the loaders import them from here)

logger = logging.getLogger(__name__)


def datasets_root():
    """Root of all builtin datasets: $DETECTRON2_DATASETS, default `datasets/`."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


def require_path(path, what, fix):
    """Return `path`, or raise FileNotFoundError naming what was expected there and how to fix it."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: expected '{path}'. {fix}")
    return path


@functools.lru_cache(maxsize=None)
def read_image_size(path):
    """(height, width) of an image file, read from its header only (PIL opens lazily)."""
    with Image.open(path) as image:
        width, height = image.size
    return height, width


def clean_boxes(boxes_xyxy, width, height, source):
    """Clip boxes to the image and drop those with zero or negative size.

    Args:
        boxes_xyxy: float array [N, 4] (any integer dtype is cast to float64 first).
        width, height: image size; None skips clipping.
        source: file or image named in the log message.
    Returns:
        (boxes [M, 4] float64, keep [N] bool)
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    original = boxes.copy()
    if width is not None and height is not None:
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    n_clipped = int((np.abs(boxes - original).sum(axis=1) > 0)[keep].sum())
    n_dropped = int((~keep).sum())
    if n_clipped or n_dropped:
        logger.info(f"{source}: clipped {n_clipped} box(es) to the image, dropped {n_dropped} empty or out-of-image box(es)")
    return boxes[keep], keep


def make_annotations(boxes_xyxy, person_ids):
    """Detectron2 annotation dicts for clean XYXY boxes [N, 4] and person ids [N]."""
    return [
        {"bbox": [float(v) for v in box], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0, "person_id": int(pid)}
        for box, pid in zip(boxes_xyxy, person_ids)
    ]


def make_record(file_name, image_id, height, width, boxes_xyxy, person_ids, camera_id=-1, **extra):
    """One dataset dict. Boxes are cleaned (clipped / empty dropped) against (width, height)."""
    person_ids = np.asarray(person_ids, dtype=np.int64).reshape(-1)
    boxes, keep = clean_boxes(boxes_xyxy, width, height, source=file_name)
    record = {
        "file_name": file_name,
        "image_id": image_id,
        "height": int(height) if height is not None else None,
        "width": int(width) if width is not None else None,
        "camera_id": int(camera_id),
        "annotations": make_annotations(boxes, person_ids[keep]),
    }
    record.update(extra)
    return record


def count_person_ids(records):
    """Number of distinct labeled identities (person_id >= 0) in a list of records."""
    return len({a["person_id"] for r in records for a in r["annotations"] if a["person_id"] >= 0})


def register_person_search(name, loader, domain="source", **metadata):
    """Register `loader()` under `name` lazily; it reads nothing until DatasetCatalog.get(name).

    Records are tagged with "dataset_name" and "domain"; `num_pids` is set on first load when the
    metadata does not already carry it.
    """

    def load():
        records = loader()
        for record in records:
            record.setdefault("dataset_name", name)
            record.setdefault("domain", domain)
        meta = MetadataCatalog.get(name)
        if not hasattr(meta, "num_pids"):
            meta.set(num_pids=count_person_ids(records))
        return records

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(
        thing_classes=["person"], evaluator_type="person_search", domain=domain, **metadata
    )
