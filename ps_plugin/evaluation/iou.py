"""The one box IoU every protocol uses: plain x1y1x2y2 areas, no +1 (as the field's reference code)."""
import numpy as np


def _area(boxes):
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _iou(a, b):
    """IoU of broadcastable box arrays a [..., 4], b [..., 4] -> [...]."""
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    union = _area(a) + _area(b) - inter
    return inter / np.maximum(union, np.finfo(np.float64).tiny)


def pairwise_iou(boxes_a, boxes_b):
    """IoU matrix: boxes_a [N, 4], boxes_b [M, 4] (x1y1x2y2) -> float64 [N, M]."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    return _iou(a[:, None, :], b[None, :, :])


def paired_iou(boxes_a, boxes_b):
    """Row-wise IoU: boxes_a [N, 4] with boxes_b [N, 4] -> float64 [N]."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    return _iou(a, b)


def search_iou_threshold(gt_boxes):
    """IoU a detection needs to match a ground-truth person in search: min(0.5, wh / ((w+10)(h+10))).

    Lowers the bar for tiny people (CUHK-SYSU / PRW protocol). gt_boxes [N, 4] x1y1x2y2 -> [N].
    """
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    w, h = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    return np.minimum(0.5, w * h / ((w + 10) * (h + 10)))
