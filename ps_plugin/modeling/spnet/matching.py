"""Anchor matching, balanced anchor sampling and the anchor focal loss (Sec. 3.2-3.3, suppl. Sec. 8)."""
import torch
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.sampling import subsample_labels
from detectron2.structures import pairwise_iou
from fvcore.nn import sigmoid_focal_loss
from torchvision.ops import generalized_box_iou

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


QC_ANCHOR_CHOICES = ("hard", "random")


def hard_qc_anchors(anchors, target, norms, num_samples):
    """Indices [<= K] of the anchors a QC (query, image) pair trains the Box Detector on (authors' code,
    `filter_topk_train` 'posneg'), K = num_samples.

    anchors [A, 4] XYXY; target [1, 4] the query's box in the image, or [0, 4] when absent; norms [A]
    = ||x_q - x_a||. Target present: the K/2 anchors of highest GIoU with it, then up to K/2 of the K
    smallest-norm (highest-scoring) anchors not already chosen, in index order. Absent: the K
    smallest-norm anchors (the hardest negatives).
    """
    hardest = norms.topk(min(num_samples, len(norms)), largest=False).indices
    if len(target) == 0:
        return hardest
    best = generalized_box_iou(target, anchors)[0].topk(min(num_samples // 2, len(norms))).indices
    taken = torch.zeros(len(norms), dtype=torch.bool, device=norms.device)
    taken[best] = True
    hard = hardest[~taken[hardest]].sort().values[: num_samples - num_samples // 2]
    return torch.cat([best, hard])


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
