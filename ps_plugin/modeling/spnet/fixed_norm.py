"""The Logits Layer: class logits from the norm of offset embeddings (Sec. 3.3, eq. 3-4)."""
import math

import torch
import torch.nn.functional as F
from torch import nn


def chi_mean_std(dim):
    """Mean and standard deviation of Chi(d), the norm of x ~ N(0, I_d) (eq. 4).

    mu = sqrt(2) * Gamma((d + 1) / 2) / Gamma(d / 2), s = sqrt(d - mu^2); lgamma keeps large d finite.
    """
    if dim < 1:
        raise ValueError(f"chi_mean_std needs a dimension >= 1, got {dim}")
    mu = math.sqrt(2.0) * math.exp(math.lgamma((dim + 1) / 2.0) - math.lgamma(dim / 2.0))
    return mu, math.sqrt(max(dim - mu * mu, 0.0))


class FixedNormLogits(nn.Module):
    """z = -(||x_o|| - mu_Chi(d)) / s_Chi(d): no learnable parameter (eq. 3 with the "(-)" sign).

    For x_o ~ N(0, I_d), z has mean 0 and variance 1 for every d. `negate=False` gives Table 9's
    "(+)" variant. Input x_o [..., d] (`forward`) or w = ||x_o|| [...] (`from_norm`); output z [...].
    """

    def __init__(self, dim, negate=True):
        super().__init__()
        self.dim = dim
        self.mu, self.s = chi_mean_std(dim)
        self.sign = -1.0 if negate else 1.0

    def from_norm(self, norms):
        return self.sign * (norms - self.mu) / self.s

    def forward(self, offsets):
        return self.from_norm(offsets.norm(dim=-1))


class BatchNormLogits(nn.Module):
    """Norm-Aware Embedding logits (Chen et al. 2020; Table 9 baseline): z = +-BN(||x_o||).

    BatchNorm1d(1) on the norms of every offset in the batch; its statistics are dominated by
    negatives, which the paper gives as the reason FixedNorm works better.
    """

    def __init__(self, dim, negate=True):
        super().__init__()
        self.dim = dim
        self.sign = -1.0 if negate else 1.0
        self.norm = nn.BatchNorm1d(1)

    def from_norm(self, norms):
        flat = norms.reshape(-1, 1)
        if self.training and flat.shape[0] < 2:
            flat = F.batch_norm(flat, self.norm.running_mean, self.norm.running_var, self.norm.weight,
                                self.norm.bias, False, 0.0, self.norm.eps)
        else:
            flat = self.norm(flat)
        return self.sign * flat.reshape(norms.shape)

    def forward(self, offsets):
        return self.from_norm(offsets.norm(dim=-1))


def build_logits_layer(cfg):
    """cfg.PS.SPNET.LOGITS in {"fixed_norm", "batch_norm"} -> the Logits Layer for d = EMBED_DIM."""
    kind = cfg.PS.SPNET.LOGITS
    layers = {"fixed_norm": FixedNormLogits, "batch_norm": BatchNormLogits}
    if kind not in layers:
        raise ValueError(f"PS.SPNET.LOGITS={kind!r}: use 'fixed_norm' or 'batch_norm'")
    return layers[kind](cfg.PS.SPNET.EMBED_DIM, negate=cfg.PS.SPNET.LOGITS_NEGATE)
