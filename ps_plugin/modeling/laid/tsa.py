"""Task-Sensitivity Alignment (TSA, LAID eq. 10): the detector's foreground/background distribution
P of each sampled proposal is pulled towards the re-id head's Q, the norm-aware (NAE) confidence
sigmoid(BN(||x||)) of the same proposal, so that the two heads agree on which boxes are people
when pseudo labels are selected.

L_TSA = mean over proposals of KL(Q || P) = sum_c Q_c (log Q_c - log P_c), c in {fg, bg}, with Q
detached (RPN <= ReID). The bidirectional variant (Table 4, RPN <=> ReID) adds KL(P || Q) with P
detached, so each head moves towards the other.

P (PS.LAID.TSA.DETECTOR): "rpn", the paper's, is sigmoid of the objectness logit of the anchor each
sampled proposal came from (DifferentiableObjectnessRPN keeps its gradient); the ground-truth boxes
that ROI sampling appends came from no anchor and are left out. "box" is the box classifier's person
probability of every sampled proposal.
"""
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from torch import nn

from .config import TSA_DETECTORS, TSA_MODES, check_laid_config

# Probabilities are clamped to [EPS, 1 - EPS] before the logarithms.
EPS = 1e-6


def binary_kl(q, p):
    """KL(Q || P) of the two-class distributions [q, 1 - q] and [p, 1 - p]: q, p [N] -> [N]."""
    q, p = q.clamp(EPS, 1 - EPS), p.clamp(EPS, 1 - EPS)
    return q * (q.log() - p.log()) + (1 - q) * ((1 - q).log() - (1 - p).log())


# On every proposal the ROI heads sample: its row in its image's RPN proposals, -1 for a ground-truth box.
PROPOSAL_INDEX = "proposal_index"


def index_proposals(proposals, targets):
    """Set PROPOSAL_INDEX on each image's RPN proposals (rows 0..K_i-1) and on its targets (-1).

    The field then survives Detectron2's ROI sampling: add_ground_truth_to_proposals builds the appended
    ground-truth proposals from the targets' fields, and Instances.cat of proposals and ground-truth
    proposals needs the field on both (not a gt_* name, so sampling copies it onto nothing else)."""
    for image_proposals, image_targets in zip(proposals, targets):
        device = image_proposals.proposal_boxes.device
        image_proposals.set(PROPOSAL_INDEX, torch.arange(len(image_proposals), device=device))
        image_targets.set(PROPOSAL_INDEX, torch.full((len(image_targets),), -1, dtype=torch.long, device=device))


class TaskSensitivityAlignment(nn.Module):
    """forward(detector foreground probabilities [N], re-id (NAE) confidences [N]) -> scalar loss;
    detector_probs gives the first argument from the RPN or the box classifier (module docstring)."""

    @configurable
    def __init__(self, *, mode="rpn_from_reid", weight=1.0, detector="rpn"):
        super().__init__()
        if mode not in TSA_MODES:
            raise ValueError(f"TSA mode='{mode}' is not one of {TSA_MODES}.")
        if detector not in TSA_DETECTORS:
            raise ValueError(f"TSA detector='{detector}' is not one of {TSA_DETECTORS}.")
        self.mode = mode
        self.weight = weight
        self.detector = detector

    @classmethod
    def from_config(cls, cfg):
        check_laid_config(cfg)
        node = cfg.PS.LAID.TSA
        return {"mode": node.MODE, "weight": node.WEIGHT, "detector": node.DETECTOR}

    def detector_probs(self, proposals, sampled, class_logits):
        """P of eq. 10. proposals: each image's RPN proposals (objectness_logits [K_i], PROPOSAL_INDEX);
        sampled: the ROI heads' sample of them, S proposals in all; class_logits [S, C + 1] of the box
        predictor (class 0 = person) -> (foreground probabilities [S'], aligned bool [S]: the sampled
        proposals they belong to, in order)."""
        if self.detector == "box":
            probs = F.softmax(class_logits, dim=1)[:, 0]
            return probs, torch.ones_like(probs, dtype=torch.bool)
        rows = [image_sampled.get(PROPOSAL_INDEX) for image_sampled in sampled]
        logits = [image_proposals.objectness_logits[r[r >= 0]] for image_proposals, r in zip(proposals, rows)]
        return torch.sigmoid(torch.cat(logits)), torch.cat(rows) >= 0

    def forward(self, detection_probs, reid_probs):
        if self.mode == "off" or len(detection_probs) == 0:
            return (detection_probs.sum() + reid_probs.sum()) * 0.0
        loss = binary_kl(reid_probs.detach(), detection_probs).mean()
        if self.mode == "bidirectional":
            loss = loss + binary_kl(detection_probs.detach(), reid_probs).mean()
        return self.weight * loss
