"""A colour-histogram nearest-neighbour baseline on ground-truth boxes (no learning).

Each person box becomes an HSV histogram (Hellinger-normalised); gallery "detections" are the
ground-truth boxes with score 1. It measures how far colour alone gets on a dataset: a dataset
it solves cannot tell a re-id model from a colour matcher.
"""
import cv2
import numpy as np

from .protocols import evaluate_search
from .search_inputs import GalleryTruth, query_from_record

HSV_BINS = (8, 8, 4)
_HSV_RANGES = [0, 180, 0, 256, 0, 256]


def hsv_histograms(image_bgr, boxes_xyxy, bins=HSV_BINS):
    """HSV histograms of boxes [N, 4] in a BGR image [H, W, 3] -> float32 [N, prod(bins)], L2-normalised
    after a square root (Hellinger), so a dot product compares distributions."""
    hsv = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2HSV)
    height, width = hsv.shape[:2]
    features = np.zeros((len(boxes_xyxy), int(np.prod(bins))), dtype=np.float32)
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes_xyxy).reshape(-1, 4)):
        x1, y1 = int(max(0, np.floor(x1))), int(max(0, np.floor(y1)))
        x2, y2 = int(min(width, np.ceil(x2))), int(min(height, np.ceil(y2)))
        crop = hsv[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]
        hist = cv2.calcHist([crop], [0, 1, 2], None, list(bins), _HSV_RANGES).ravel()
        hist = np.sqrt(hist / max(hist.sum(), 1.0))
        features[i] = hist / max(np.linalg.norm(hist), 1e-12)
    return features


def _read(record):
    image = cv2.imread(record["file_name"], cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"Cannot read image '{record['file_name']}' (image_id {record['image_id']})")
    return image


def colour_histogram_search(gallery_records, query_records, bins=HSV_BINS):
    """Search every query of `query_records` in `gallery_records` with colour histograms.

    Returns:
        SearchEvaluation (per-query AP and hit rank; `.summary()` gives mAP / top-k).
    """
    results = {}
    for record in gallery_records:
        boxes = np.array([a["bbox"] for a in record["annotations"]], dtype=np.float32).reshape(-1, 4)
        results[record["image_id"]] = {
            "boxes": boxes,
            "scores": np.ones(len(boxes), dtype=np.float32),
            "embeddings": hsv_histograms(_read(record), boxes, bins),
        }
    queries = [
        query_from_record(record, hsv_histograms(_read(record), [record["annotations"][0]["bbox"]], bins)[0])
        for record in query_records
    ]
    return evaluate_search(results, queries, gallery_truth=GalleryTruth.from_records(gallery_records))
