"""The re-id branch of the ROI heads: embedding head + OIM on the sampled proposals."""
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from torch import nn

from ps_plugin.modeling.common import OIMLoss, ReIDEmbeddingHead, resolve_num_pids


def proposal_pids(proposals, num_classes):
    """Per-proposal identities of sampled proposals -> (pids [N] int64, foreground [N] bool).

    pids: the matched ground truth's gt_pids for foreground proposals (-1 unlabeled, and -1 for
    background or images without ground truth, which carry no gt_pids).
    """
    pids, foreground = [], []
    for p in proposals:
        fg = (p.gt_classes >= 0) & (p.gt_classes < num_classes)
        ids = p.gt_pids if p.has("gt_pids") else torch.full_like(p.gt_classes, -1)
        pids.append(torch.where(fg, ids.long(), torch.full_like(ids.long(), -1)))
        foreground.append(fg)
    return torch.cat(pids), torch.cat(foreground)


class ReIDBranch(nn.Module):
    """Embedding head + OIM, fed with the ROI features the box branch already computed.

    forward(box_features [N, ...]) -> (embeddings [N, D] L2-normalised, NAE scores [N] or None).
    losses(box_features, sampled proposals) -> {"loss_oim"} (+ {"loss_nae_det"} with NAE: binary
    cross entropy of the norm-derived confidence against foreground / background, NAE Eq. 3).
    """

    @configurable
    def __init__(self, *, head, oim, num_classes, loss_weight=1.0, nae_loss_weight=1.0):
        super().__init__()
        self.head = head
        self.oim = oim
        self.num_classes = num_classes
        self.loss_weight = loss_weight
        self.nae_loss_weight = nae_loss_weight

    @classmethod
    def from_config(cls, cfg, in_channels):
        reid = cfg.PS.REID
        return {
            "head": ReIDEmbeddingHead(cfg, in_channels),
            "oim": OIMLoss(resolve_num_pids(cfg), reid.QUEUE_SIZE, reid.EMBED_DIM, reid.LUT_MOMENTUM, reid.SCALAR),
            "num_classes": cfg.MODEL.ROI_HEADS.NUM_CLASSES,
            "loss_weight": reid.LOSS_WEIGHT,
            "nae_loss_weight": reid.NAE_LOSS_WEIGHT,
        }

    def forward(self, box_features):
        embeddings, norms = self.head(box_features)
        scores = self.head.detection_scores(norms) if self.head.nae else None
        return embeddings, scores

    def losses(self, box_features, proposals):
        pids, foreground = proposal_pids(proposals, self.num_classes)
        embeddings, norms = self.head(box_features)
        losses = {"loss_oim": self.loss_weight * self.oim(embeddings[foreground], pids[foreground])}
        if self.head.nae:
            scores = self.head.detection_scores(norms)
            losses["loss_nae_det"] = self.nae_loss_weight * F.binary_cross_entropy(scores, foreground.float())
        return losses
