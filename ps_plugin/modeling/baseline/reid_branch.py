"""The re-id branch of the ROI heads: embedding head + OIM on the sampled proposals."""
import logging

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.data import DatasetCatalog, MetadataCatalog
from torch import nn

from ps_plugin.modeling.common import OIMLoss, ReIDEmbeddingHead

logger = logging.getLogger(__name__)


def resolve_num_pids(cfg):
    """cfg.PS.REID.NUM_PIDS, or (when 0) the sum of `num_pids` over DATASETS.TRAIN's metadata.

    Training sets whose metadata lacks `num_pids` are loaded once (register_person_search sets it).
    Several training sets are assumed to use disjoint, consecutive person ids.
    """
    if cfg.PS.REID.NUM_PIDS > 0:
        return cfg.PS.REID.NUM_PIDS
    total = 0
    for name in cfg.DATASETS.TRAIN:
        meta = MetadataCatalog.get(name)
        if not hasattr(meta, "num_pids"):
            try:
                DatasetCatalog.get(name)
            except FileNotFoundError as error:
                raise FileNotFoundError(
                    f"{error}\nThe OIM lookup table is sized from DATASETS.TRAIN. For inference without the "
                    "training data, set PS.REID.NUM_PIDS to the checkpoint's number of identities."
                ) from error
        total += MetadataCatalog.get(name).get("num_pids", 0)
    if total <= 0:
        raise ValueError(
            f"Cannot size the OIM lookup table: DATASETS.TRAIN={tuple(cfg.DATASETS.TRAIN)} gives no "
            "labeled identity. Set PS.REID.NUM_PIDS (the number of labeled person ids)."
        )
    logger.info(f"OIM lookup table: {total} identities from {tuple(cfg.DATASETS.TRAIN)}")
    return total


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
