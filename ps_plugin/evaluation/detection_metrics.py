"""Person detection quality of the gallery pass: AP@0.5 and recall (the field's reference rules).

A detection is a true positive when its IoU with a ground-truth box is >= iou_thresh and they are
each other's best match (the GT is the detection's highest-IoU GT and the detection the GT's
highest-IoU detection). AP = sklearn average precision over all kept detections x recall.
"""
import numpy as np
from sklearn.metrics import average_precision_score

from .iou import pairwise_iou


def mutual_best_matches(ious, iou_thresh):
    """Bool [M, N] of GT/detection pairs that are mutual best matches with IoU >= iou_thresh."""
    matched = ious >= iou_thresh
    matched &= np.arange(len(ious))[:, None] == ious.argmax(axis=0)[None, :]
    matched &= np.arange(ious.shape[1])[None, :] == ious.argmax(axis=1)[:, None]
    return matched


def evaluate_detection(results, truth, score_thresh=0.01, iou_thresh=0.5, labeled_only=False):
    """Detection AP and recall over the gallery-truth images.

    Args:
        results: GalleryResults covering every truth image.
        truth: GalleryTruth.
        score_thresh: detections below it are ignored.
        labeled_only: keep only labeled GT boxes (person_id >= 0); images without one are skipped.
    Returns:
        {"AP": float, "recall": float}, fractions.
    """
    kept = results.select(truth.image_ids, score_thresh)
    y_true, y_score = [], []
    num_gt = num_tp = 0
    for image in range(len(truth.image_ids)):
        gt_boxes, pids = truth.boxes_of(image)
        if labeled_only:
            gt_boxes = gt_boxes[pids >= 0]
            if len(gt_boxes) == 0:
                continue
        start, stop = kept.image_offsets[image], kept.image_offsets[image + 1]
        num_gt += len(gt_boxes)
        if stop == start:
            continue
        true_positive = np.zeros(stop - start, dtype=bool)
        if len(gt_boxes):
            true_positive = mutual_best_matches(pairwise_iou(gt_boxes, kept.boxes[start:stop]), iou_thresh).any(axis=0)
        y_true.append(true_positive)
        y_score.append(kept.scores[start:stop])
        num_tp += int(true_positive.sum())
    recall = num_tp / num_gt if num_gt else 0.0
    ap = average_precision_score(np.concatenate(y_true), np.concatenate(y_score)) * recall if num_tp else 0.0
    return {"AP": float(ap), "recall": float(recall)}
