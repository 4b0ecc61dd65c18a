"""Numpy-only basics of dataset records, shared with the evaluation (no torch, no Detectron2)."""
import numpy as np

UNLABELED = -1  # person_id of a person box without an identity
# Record key: float32 [M, 4] XYXY_ABS regions of people not annotated one by one (CrowdHuman), which
# detector training ignores (docs/DATA_RECORDS.md).
IGNORE_REGIONS = "ignore_regions"


def xywh_to_xyxy(boxes_xywh):
    """[N, 4] (x, y, w, h) of any dtype -> float64 [N, 4] (x1, y1, x2, y2). Casts before adding (uint16 overflow)."""
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4).copy()
    boxes[:, 2:] += boxes[:, :2]
    return boxes
