"""What a search protocol needs besides the model output: queries and the gallery ground truth."""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..data.datasets.record_fields import UNLABELED


@dataclass
class SearchQuery:
    """One query of a protocol.

    image_id: the query's scene image; box: [4] x1y1x2y2; embedding: [D] from the query box.
    person_id / camera_id: used by the generic (PRW-style) rule; -1 = unknown.
    gallery_image_ids (G) and gallery_boxes [G, 4] (NaN row: person absent): the explicit gallery
    (CUHK-SYSU TestG{N}); None = every gallery-truth image except the query's own.
    """

    image_id: str
    box: np.ndarray
    embedding: np.ndarray
    person_id: int = UNLABELED
    camera_id: int = -1
    gallery_image_ids: Optional[list] = None
    gallery_boxes: Optional[np.ndarray] = None

    @property
    def has_explicit_gallery(self):
        return self.gallery_image_ids is not None


def query_from_record(record, embedding):
    """SearchQuery from a query dataset record (docs/DATA_RECORDS.md) and its embedding [D]."""
    annotation = record["annotations"][0]
    gallery = record.get("gallery")
    return SearchQuery(
        image_id=record["image_id"],
        box=np.asarray(annotation["bbox"], dtype=np.float64),
        embedding=np.asarray(embedding, dtype=np.float32).reshape(-1),
        person_id=int(annotation.get("person_id", UNLABELED)),
        camera_id=int(record.get("camera_id", -1)),
        gallery_image_ids=None if gallery is None else list(gallery["image_ids"]),
        gallery_boxes=None if gallery is None else np.asarray(gallery["boxes"], dtype=np.float64).reshape(-1, 4),
    )


class GalleryTruth:
    """Ground truth of the gallery dataset, flat.

    image_ids: list[str] (G); camera_ids: int64 [G];
    ann_image: int64 [A] (index into image_ids), ann_boxes: float64 [A, 4], ann_pids: int64 [A].
    """

    def __init__(self, image_ids, camera_ids, ann_image, ann_boxes, ann_pids):
        self.image_ids = list(image_ids)
        self.index = {name: i for i, name in enumerate(self.image_ids)}
        self.camera_ids = np.asarray(camera_ids, dtype=np.int64)
        order = np.argsort(np.asarray(ann_image, dtype=np.int64), kind="stable")
        self.ann_image = np.asarray(ann_image, dtype=np.int64)[order]
        self.ann_boxes = np.asarray(ann_boxes, dtype=np.float64).reshape(-1, 4)[order]
        self.ann_pids = np.asarray(ann_pids, dtype=np.int64)[order]
        self.ann_offsets = np.searchsorted(self.ann_image, np.arange(len(self.image_ids) + 1))

    @classmethod
    def from_records(cls, records):
        """From gallery dataset records (one per image; bbox XYXY_ABS)."""
        counts = [len(r["annotations"]) for r in records]
        boxes = [a["bbox"] for r in records for a in r["annotations"]]
        pids = [a.get("person_id", UNLABELED) for r in records for a in r["annotations"]]
        return cls(
            [r["image_id"] for r in records],
            [r.get("camera_id", -1) for r in records],
            np.repeat(np.arange(len(records)), counts),
            np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
            pids,
        )

    def boxes_of(self, image):
        """Ground-truth boxes [M, 4] and person ids [M] of image index `image`."""
        rows = slice(self.ann_offsets[image], self.ann_offsets[image + 1])
        return self.ann_boxes[rows], self.ann_pids[rows]
