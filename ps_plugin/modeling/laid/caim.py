"""Cost-Aware Instance Matching (CAIM, LAID eq. 1-3): one target image's detections of this epoch
matched to the proposals cached from the previous epoch, smoothed, and new tracks started.

Per image m and epoch t:
1. candidates: detections with confidence >= alpha * epsilon (loose; alpha = 0.95), or >= epsilon
   when the loose threshold is off (Table 2 "w/o Loose Threshold");
2. eq. 1: cost c_ij = 1 - IoU(b_i^{t-1}, b_j^t), a pair valid only for IoU > 0.7; the one-to-one
   assignment with the most valid pairs and, among those, the least total cost (Jonker-Volgenant,
   scipy `linear_sum_assignment`), or DSCA's greedy rule, each candidate taking its maximum-IoU
   history box (Table 2 "w/o Global Matching"; several candidates may take the same one);
3. eq. 2: a matched pair's box and feature become lambda * history + (1 - lambda) * current;
4. eq. 3: unmatched detections with confidence >= epsilon start new tracks. Unmatched history
   proposals are dropped (DSCA), and an image keeps at least its top-scoring detection.
"""
from dataclasses import dataclass

import torch
from detectron2.config import configurable
from detectron2.structures import Boxes, pairwise_iou

from ps_plugin.modeling.common.assignment import hungarian_match

from .config import check_laid_config


@dataclass
class TrackCache:
    """The proposals H_m of one image: boxes [K, 4] float XYXY, features [K, D] float, track_ids [K]
    int64, and `next_id`, the first track id never given out in this image."""

    boxes: torch.Tensor
    features: torch.Tensor
    track_ids: torch.Tensor
    next_id: int = 0

    @classmethod
    def empty(cls, feature_dim):
        """No proposal yet (the first extraction)."""
        return cls(torch.zeros(0, 4), torch.zeros(0, feature_dim), torch.zeros(0, dtype=torch.int64), 0)

    def __len__(self):
        return len(self.boxes)


def box_iou(boxes_a, boxes_b):
    """IoU matrix of XYXY boxes [K, 4] and [N, 4] -> [K, N]."""
    return pairwise_iou(Boxes(boxes_a), Boxes(boxes_b))


def jv_assignment(iou, gate):
    """Eq. 1: one-to-one pairs (i, j) with IoU > `gate`, as many as possible, then of least total
    cost 1 - IoU. iou [K, N] -> (history indices [P], detection indices [P]) int64, by detection."""
    valid = iou > gate
    if not valid.any():
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
    # Any assignment's valid costs sum to less than min(K, N): one more valid pair always wins.
    invalid_cost = float(min(iou.shape) + 1)
    cost = torch.where(valid, 1.0 - iou, torch.full_like(iou, invalid_cost))
    rows, cols = hungarian_match(cost.double())
    keep = valid[rows, cols]
    order = torch.argsort(cols[keep])
    return rows[keep][order], cols[keep][order]


def greedy_assignment(iou, gate):
    """DSCA's temporal smoothing match: each detection j takes argmax_i IoU[i, j] if it is > `gate`
    (history boxes may be taken several times). iou [K, N] -> (history [P], detection [P]) int64."""
    if iou.numel() == 0:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
    best, rows = iou.max(dim=0)
    cols = torch.nonzero(best > gate).flatten()
    return rows[cols], cols


ASSIGNMENTS = {"jv": jv_assignment, "greedy": greedy_assignment}


class CostAwareInstanceMatching:
    """Updates one image's `TrackCache` with its detections of the current epoch (eq. 1-3).

    `update(history, boxes [N, 4], features [N, D], scores [N])` -> (new `TrackCache`,
    detection_index [K'] int64: the detection each new proposal comes from).
    """

    @configurable
    def __init__(self, *, score_thresh, loose_factor=0.95, loose=True, iou_gate=0.7, matching="jv", momentum):
        for name, value in (("score_thresh", score_thresh), ("loose_factor", loose_factor), ("momentum", momentum)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"CAIM {name}={value} is outside [0, 1].")
        if matching not in ASSIGNMENTS:
            raise ValueError(f"CAIM matching='{matching}' is not one of {tuple(ASSIGNMENTS)}.")
        self.score_thresh = score_thresh
        self.candidate_thresh = loose_factor * score_thresh if loose else score_thresh
        self.iou_gate = iou_gate
        self.assign = ASSIGNMENTS[matching]
        self.momentum = momentum

    @classmethod
    def from_config(cls, cfg):
        check_laid_config(cfg)
        caim = cfg.PS.LAID.CAIM
        return {
            "score_thresh": caim.SCORE_THRESH,
            "loose_factor": caim.LOOSE_FACTOR,
            "loose": caim.LOOSE,
            "iou_gate": caim.IOU_GATE,
            "matching": caim.MATCHING,
            "momentum": caim.MOMENTUM,
        }

    def match(self, history, boxes, scores):
        """Matched (history indices [P], detection indices [P]) among the candidates (eq. 1)."""
        candidates = torch.nonzero(scores >= self.candidate_thresh).flatten()
        if len(history) == 0 or len(candidates) == 0:
            return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
        rows, cols = self.assign(box_iou(history.boxes, boxes[candidates]), self.iou_gate)
        return rows, candidates[cols]

    def update(self, history, boxes, features, scores):
        rows, matched = self.match(history, boxes, scores)
        lam = self.momentum
        smoothed_boxes = lam * history.boxes[rows] + (1 - lam) * boxes[matched]
        smoothed_features = lam * history.features[rows] + (1 - lam) * features[matched]
        unmatched = torch.ones(len(boxes), dtype=torch.bool)
        unmatched[matched] = False
        new = torch.nonzero(unmatched & (scores >= self.score_thresh)).flatten()
        if len(matched) + len(new) == 0 and len(boxes) > 0:
            new = scores.argmax().reshape(1)
        new_ids = history.next_id + torch.arange(len(new), dtype=torch.int64)
        cache = TrackCache(
            boxes=torch.cat([smoothed_boxes, boxes[new]]),
            features=torch.cat([smoothed_features, features[new]]),
            track_ids=torch.cat([history.track_ids[rows], new_ids]),
            next_id=history.next_id + len(new),
        )
        return cache, torch.cat([matched, new])
