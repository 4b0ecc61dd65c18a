"""Pseudo labels of a domain-adaptive run (LAID, docs/LAID.md) against the target set's true annotations,
which training never sees: how many pseudo boxes cover a person, how the pseudo identities split the
true people (ARI, NMI, clusters and outliers as LAID's Fig. 5 counts them), and how the tracks CAIM
carries from epoch to epoch change person (identity switches and merges). Pure numpy and scikit-learn.

A box covers the true person it is matched to by `evaluate_detection`'s rule: IoU >= 0.5 and each
the other's best match. A person without identity (person_id < 0) is a person of their own.
"""
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from .detection_metrics import mutual_best_matches
from .iou import pairwise_iou

__all__ = ["ImagePseudoLabels", "identity_changes", "pseudo_label_quality", "true_people"]


def true_people(boxes, gt_boxes, iou_thresh=0.5):
    """The ground-truth person each box covers: boxes [N, 4], gt_boxes [M, 4] (XYXY) -> int64 [N], the
    index into gt_boxes of the box's mutual best match with IoU >= iou_thresh, or -1."""
    people = np.full(len(boxes), -1, dtype=np.int64)
    if len(boxes) and len(gt_boxes):
        gt, box = np.nonzero(mutual_best_matches(pairwise_iou(gt_boxes, boxes), iou_thresh))
        people[box] = gt
    return people


@dataclass
class ImagePseudoLabels:
    """One target image: pseudo boxes [N, 4] XYXY with their pseudo identities labels [N] (a training
    person_id: the proxy row), and the true boxes gt_boxes [M, 4] with their person ids gt_pids [M]
    (< 0: a person without identity)."""

    boxes: np.ndarray
    labels: np.ndarray
    gt_boxes: np.ndarray
    gt_pids: np.ndarray


def _true_identity_labels(images, iou_thresh):
    """(pseudo label, true identity) of every pseudo box that covers a person -> two int64 arrays [P];
    a person without identity gets a label of their own (negative, unique)."""
    pseudo, truth, unlabelled = [], [], 0
    for image in images:
        people = true_people(image.boxes, image.gt_boxes, iou_thresh)
        covered = people >= 0
        pids = np.asarray(image.gt_pids, dtype=np.int64)
        own = -1 - unlabelled - np.arange(len(pids))  # one negative label per GT box of this image
        unlabelled += len(pids)
        identity = np.where(pids >= 0, pids, own)
        pseudo.append(np.asarray(image.labels, dtype=np.int64)[covered])
        truth.append(identity[people[covered]])
    return np.concatenate(pseudo or [np.zeros(0, np.int64)]), np.concatenate(truth or [np.zeros(0, np.int64)])


def pseudo_label_quality(images, iou_thresh=0.5):
    """Counts and agreement scores of one epoch's pseudo labels (`images`: ImagePseudoLabels per target
    image) -> dict:

    pseudo_boxes, covered (pseudo boxes that cover a true person), precision = covered / pseudo_boxes,
    recall = covered / gt_boxes; identities (distinct pseudo labels), clusters (labels with >= 2 boxes),
    outliers (labels with 1 box), clustered_instances (boxes in clusters); true_identities (distinct
    person ids >= 0 among the covered people); ARI and NMI (arithmetic mean) of pseudo label against
    true identity over the covered boxes; and the ground truth: gt_boxes, gt_with_identity (boxes
    with a person id >= 0, Fig. 5's "inliers"), gt_unlabelled (Fig. 5's "outliers"), gt_identities.
    """
    labels = np.concatenate([np.asarray(i.labels, dtype=np.int64) for i in images] or [np.zeros(0, np.int64)])
    pids = np.concatenate([np.asarray(i.gt_pids, dtype=np.int64) for i in images] or [np.zeros(0, np.int64)])
    _, sizes = np.unique(labels, return_counts=True)
    pseudo, truth = _true_identity_labels(images, iou_thresh)
    agreement = len(pseudo) > 0
    return {
        "pseudo_boxes": len(labels),
        "covered": len(pseudo),
        "precision": len(pseudo) / max(len(labels), 1),
        "recall": len(pseudo) / max(len(pids), 1),
        "identities": len(sizes),
        "clusters": int((sizes >= 2).sum()),
        "outliers": int((sizes == 1).sum()),
        "clustered_instances": int(sizes[sizes >= 2].sum()),
        "true_identities": len(np.unique(truth[truth >= 0])),
        "ari": float(adjusted_rand_score(truth, pseudo)) if agreement else float("nan"),
        "nmi": float(normalized_mutual_info_score(truth, pseudo)) if agreement else float("nan"),
        "gt_boxes": len(pids),
        "gt_with_identity": int((pids >= 0).sum()),
        "gt_unlabelled": int((pids < 0).sum()),
        "gt_identities": len(np.unique(pids[pids >= 0])),
    }


def identity_changes(previous_people, rows, current_people):
    """Identity switches and merges of one image's tracks from one epoch to the next.

    previous_people [K]: the true person (`true_people`) of each track of the previous epoch, -1 none;
    rows [P]: for each track continued this epoch, the previous track it continues (CAIM's matched
    history index; greedy matching may give one several); current_people [P]: the true person of each
    continued track now. A switch: a continued track covering a person at both epochs, not the same
    one. A merge: a previous track continued by tracks that cover two or more different people.
    -> (switches, merges).
    """
    previous_people, rows, current_people = (np.asarray(a, dtype=np.int64) for a in (previous_people, rows, current_people))
    before = previous_people[rows]
    switches = int(((before >= 0) & (current_people >= 0) & (before != current_people)).sum())
    covered = current_people >= 0
    people_per_row = np.unique(np.stack([rows[covered], current_people[covered]]), axis=1)[0]
    merges = int((np.unique(people_per_row, return_counts=True)[1] >= 2).sum())
    return switches, merges
