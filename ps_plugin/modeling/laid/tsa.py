"""Task-Sensitivity Alignment (TSA, LAID eq. 10): the detector's foreground/background distribution
P of each sampled proposal is pulled towards the re-id head's Q, the norm-aware (NAE) confidence
sigmoid(BN(||x||)) of the same proposal, so that the two heads agree on which boxes are people
when pseudo labels are selected.

L_TSA = mean over proposals of KL(Q || P) = sum_c Q_c (log Q_c - log P_c), c in {fg, bg}, with Q
detached (RPN <= ReID). The bidirectional variant (Table 4, RPN <=> ReID) adds KL(P || Q) with P
detached, so each head moves towards the other.
"""
import torch
from detectron2.config import configurable
from torch import nn

from .config import TSA_MODES, check_laid_config

# Probabilities are clamped to [EPS, 1 - EPS] before the logarithms.
EPS = 1e-6


def binary_kl(q, p):
    """KL(Q || P) of the two-class distributions [q, 1 - q] and [p, 1 - p]: q, p [N] -> [N]."""
    q, p = q.clamp(EPS, 1 - EPS), p.clamp(EPS, 1 - EPS)
    return q * (q.log() - p.log()) + (1 - q) * ((1 - q).log() - (1 - p).log())


class TaskSensitivityAlignment(nn.Module):
    """forward(detector foreground probabilities [N], re-id (NAE) confidences [N]) -> scalar loss."""

    @configurable
    def __init__(self, *, mode="rpn_from_reid", weight=1.0):
        super().__init__()
        if mode not in TSA_MODES:
            raise ValueError(f"TSA mode='{mode}' is not one of {TSA_MODES}.")
        self.mode = mode
        self.weight = weight

    @classmethod
    def from_config(cls, cfg):
        check_laid_config(cfg)
        return {"mode": cfg.PS.LAID.TSA.MODE, "weight": cfg.PS.LAID.TSA.WEIGHT}

    def forward(self, detection_probs, reid_probs):
        if self.mode == "off" or len(detection_probs) == 0:
            return (detection_probs.sum() + reid_probs.sum()) * 0.0
        loss = binary_kl(reid_probs.detach(), detection_probs).mean()
        if self.mode == "bidirectional":
            loss = loss + binary_kl(detection_probs.detach(), reid_probs).mean()
        return self.weight * loss
