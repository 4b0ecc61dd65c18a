"""Anchor matching, balanced anchor sampling and the anchor focal loss (Sec. 3.2-3.3, suppl. Sec. 8)."""
import torch
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.sampling import subsample_labels
from detectron2.structures import pairwise_iou
from fvcore.nn import sigmoid_focal_loss

from .box_detector import loss_normalizer


def build_anchor_matcher(cfg):
    """Matcher of cfg.PS.SPNET.TRAIN: IoU >= 0.5 positive, below negative (paper default)."""
    node = cfg.PS.SPNET.TRAIN
    return Matcher(list(node.IOU_THRESHOLDS), list(node.IOU_LABELS), node.ALLOW_LOW_QUALITY_MATCHES)


def match_boxes(matcher, gt_boxes, boxes):
    """gt_boxes Boxes [M], boxes Boxes [A] -> (matched gt index [A], label [A] in {1, 0, -1 ignore}).

    With M = 0 every box is negative (label 0) and its matched index is 0 (unused).
    """
    if len(gt_boxes) == 0:
        zeros = torch.zeros(len(boxes), dtype=torch.int64, device=boxes.tensor.device)
        return zeros, zeros.clone()
    matched_idxs, labels = matcher(pairwise_iou(gt_boxes, boxes))
    return matched_idxs, labels.to(torch.int64)


def sample_balanced(labels, num_samples, positive_fraction):
    """Indices [K] of at most `num_samples` boxes, at most `positive_fraction` of them positive.

    labels [A] in {1, 0, -1}; ignored boxes (-1) are never chosen; the rest are negatives.
    """
    pos, neg = subsample_labels(labels, num_samples, positive_fraction, bg_label=0)
    return torch.cat([pos, neg])


def anchor_focal_loss(logits, labels, alpha=0.5, gamma=1.0, normalization="num_pos"):
    """L_anc: sigmoid focal loss (Lin et al. 2017) of anchor logits z_a [A] vs labels [A] in {1, 0, -1}.

    Ignored anchors (-1) are left out. "num_pos": summed and divided by the positives of the
    whole batch, all ranks together (authors' code; box_detector.loss_normalizer); "mean":
    averaged over this rank's non-ignored anchors (paper's wording). A is 0.4-1.6 M anchors per
    batch, so "mean" makes L_anc about A / #positives (~1000x) weaker than "num_pos".
    """
    valid = labels >= 0
    loss = sigmoid_focal_loss(logits[valid], labels[valid].to(logits.dtype), alpha=alpha, gamma=gamma,
                              reduction="sum")
    return loss / loss_normalizer(labels[valid], normalization)
