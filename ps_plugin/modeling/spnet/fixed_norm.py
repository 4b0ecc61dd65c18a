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

    def norm_for_logit(self, logit):
        """The offset norm w whose logit is `logit` (inverse of from_norm): w = mu + sign * s * z."""
        return self.mu + self.sign * self.s * logit

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


def prior_logit(prior):
    """Logit of the prior probability pi: -log((1 - pi) / pi) (-log 99 = -4.595 for pi = 0.01)."""
    if not 0.0 < prior < 1.0:
        raise ValueError(f"PS.SPNET.ANCHOR_PRIOR_PROB={prior}: a probability strictly between 0 and 1")
    return -math.log((1.0 - prior) / prior)


def anchor_bias_value(kind, prior, logits_layer):
    """The constant b that fills every channel of the Anchor Embedder's conv bias (PS.SPNET.ANCHOR_BIAS_INIT).

    "prior_score": every anchor starts with score pi (RetinaNet's prior, Lin et al. 2017, Sec. 4.1).
    At init the conv weights are ~N(0, 0.01), so x_a ~ b * 1_d and, with the zero Bridge Layer,
    x_o = -x_a: ||x_o|| = |b| sqrt(d). b = -w / sqrt(d) with w the norm whose FixedNorm logit is
    -log((1 - pi) / pi) (for d = 128, pi = 0.01: w = 14.54, b = -1.285). With BatchNorm logits the
    norms are standardised, so the prior goes into that BatchNorm's shift instead and b = 0.
    "prior_channel": b = -log((1 - pi) / pi) (authors' code: RetinaNet's bias on each of the d
    channels; under FixedNorm the initial score is then ~1e-25 for d = 128).
    "zeros": b = 0 (x_o ~ 0, so every anchor starts at score sigmoid(mu / s) ~ 1).
    """
    if kind == "zeros":
        return 0.0
    logit = prior_logit(prior)
    if kind == "prior_channel":
        return logit
    if kind != "prior_score":
        raise ValueError(f"PS.SPNET.ANCHOR_BIAS_INIT={kind!r}: use 'prior_score', 'prior_channel' or 'zeros'")
    if isinstance(logits_layer, BatchNormLogits):
        nn.init.constant_(logits_layer.norm.bias, logits_layer.sign * logit)
        return 0.0
    return -logits_layer.norm_for_logit(logit) / math.sqrt(logits_layer.dim)


def build_logits_layer(cfg):
    """cfg.PS.SPNET.LOGITS in {"fixed_norm", "batch_norm"} -> the Logits Layer for d = EMBED_DIM."""
    kind = cfg.PS.SPNET.LOGITS
    layers = {"fixed_norm": FixedNormLogits, "batch_norm": BatchNormLogits}
    if kind not in layers:
        raise ValueError(f"PS.SPNET.LOGITS={kind!r}: use 'fixed_norm' or 'batch_norm'")
    return layers[kind](cfg.PS.SPNET.EMBED_DIM, negate=cfg.PS.SPNET.LOGITS_NEGATE)
