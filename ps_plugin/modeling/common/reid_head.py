"""Re-id embedding head: pooled ROI features -> L2-normalised D-dim embedding (+ NAE score)."""
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from torch import nn


def _batch_norm(bn, x):
    """`bn(x)`, but with running statistics when a training batch has a single row (a
    DomainSpecificBatchNorm1d: its active domain's BatchNorm1d)."""
    bn = getattr(bn, "active", bn)
    if bn.training and x.shape[0] < 2:
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    return bn(x)


class DomainSpecificBatchNorm1d(nn.Module):
    """Domain-specific BatchNorm (DSBN, Chang et al. CVPR 2019; DSCA's re-id head): one BatchNorm1d per
    domain ("source", "target"); `domain` picks the one in use (a domain-adaptive model sets it for
    each domain's forward; it stays "target", the domain searched at test time, otherwise).
    forward(x [N, C]) -> [N, C]."""

    def __init__(self, num_features):
        super().__init__()
        self.source = nn.BatchNorm1d(num_features)
        self.target = nn.BatchNorm1d(num_features)
        self.domain = "target"

    @property
    def active(self):
        return getattr(self, self.domain)

    def forward(self, x):
        return _batch_norm(self.active, x)


class ReIDEmbeddingHead(nn.Module):
    """features [N, C] or [N, C, H, W] (spatially averaged) -> Linear -> (BN) -> embedding.

    forward returns (embeddings [N, D] L2-normalised, norms [N] of the pre-normalisation vector).
    With NAE (Chen et al., "Norm-Aware Embedding for Efficient Person Search", CVPR 2020, Eq. 2),
    `detection_scores(norms)` = sigmoid(BN(norm)) [N] is the person/background confidence.
    """

    @configurable
    def __init__(self, *, in_channels, embed_dim=256, use_bn=True, nae=False):
        super().__init__()
        if embed_dim < 1:
            raise ValueError(f"Re-id embedding size {embed_dim} (PS.REID.EMBED_DIM): give a size >= 1 (256 in OIM).")
        self.projection = nn.Linear(in_channels, embed_dim)
        nn.init.normal_(self.projection.weight, std=0.01)
        nn.init.zeros_(self.projection.bias)
        self.bn = nn.BatchNorm1d(embed_dim) if use_bn else None
        self.norm_bn = nn.BatchNorm1d(1) if nae else None

    @classmethod
    def from_config(cls, cfg, in_channels):
        return {
            "in_channels": in_channels,
            "embed_dim": cfg.PS.REID.EMBED_DIM,
            "use_bn": cfg.PS.REID.HEAD_BN,
            "nae": cfg.PS.REID.NAE,
        }

    @property
    def nae(self):
        return self.norm_bn is not None

    def forward(self, features):
        if features.dim() == 4:
            features = features.mean(dim=(2, 3))
        x = self.projection(features.flatten(1))
        if self.bn is not None:
            x = _batch_norm(self.bn, x)
        norms = x.norm(dim=1)
        return x / norms.clamp(min=1e-12)[:, None], norms

    def detection_scores(self, norms):
        """NAE confidence sigmoid(BN(r)) for embedding norms r [N] -> [N] in (0, 1)."""
        if self.norm_bn is None:
            raise RuntimeError("detection_scores needs the NAE head (PS.REID.NAE=True)")
        return torch.sigmoid(_batch_norm(self.norm_bn, norms[:, None]))[:, 0]
