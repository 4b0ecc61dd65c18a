"""SPNet Logits Layer: FixedNorm (eq. 3-4) statistics and the BatchNorm-logits option (Table 9)."""
import math

import pytest
import torch
from scipy.special import gamma

from ps_plugin.config import get_ps_cfg
from ps_plugin.modeling.spnet.config import add_spnet_config
from ps_plugin.modeling.spnet.fixed_norm import BatchNormLogits, FixedNormLogits, build_logits_layer, chi_mean_std


@pytest.mark.parametrize("dim", [1, 2, 16, 128])
def test_chi_mean_std_matches_closed_form(dim):
    mu, s = chi_mean_std(dim)
    expected_mu = math.sqrt(2) * gamma((dim + 1) / 2) / gamma(dim / 2)
    assert mu == pytest.approx(expected_mu, rel=1e-10)
    assert s == pytest.approx(math.sqrt(dim - expected_mu**2), rel=1e-8)


def test_chi_mean_std_values_and_large_dim():
    mu, s = chi_mean_std(128)
    assert (round(mu, 4), round(s, 4)) == (11.2916, 0.7064)  # authors' code values for d = 128
    mu, s = chi_mean_std(2048)  # Gamma(1024) overflows a float: lgamma keeps it finite
    assert math.isfinite(mu) and mu == pytest.approx(math.sqrt(2048 - 0.5), rel=1e-4)
    assert s == pytest.approx(math.sqrt(0.5), rel=1e-3)


@pytest.mark.parametrize("dim", [128, 2048])
def test_fixed_norm_standardises_unit_gaussian_offsets(dim):
    torch.manual_seed(0)
    offsets = torch.randn(20000, dim, dtype=torch.float64)
    z = FixedNormLogits(dim)(offsets)
    assert z.shape == (20000,)
    assert abs(float(z.mean())) < 0.03
    assert float(z.var()) == pytest.approx(1.0, abs=0.05)


def test_fixed_norm_sign_and_no_parameters():
    layer = FixedNormLogits(4)
    assert list(layer.parameters()) == []
    small, large = torch.zeros(1, 4), torch.full((1, 4), 10.0)
    assert layer(small) > layer(large)  # "(-)": a small ||x_o|| is a confident match
    positive = FixedNormLogits(4, negate=False)
    assert torch.allclose(positive(large), -layer(large))
    mu, s = chi_mean_std(4)
    assert float(layer.from_norm(torch.tensor(mu + s))) == pytest.approx(-1.0)


def test_batch_norm_logits_option():
    cfg = get_ps_cfg()
    add_spnet_config(cfg)
    assert isinstance(build_logits_layer(cfg), FixedNormLogits)
    cfg.PS.SPNET.LOGITS = "batch_norm"
    layer = build_logits_layer(cfg)
    assert isinstance(layer, BatchNormLogits) and len(list(layer.parameters())) == 2
    z = layer(torch.randn(64, cfg.PS.SPNET.EMBED_DIM) * 3 + 1)
    assert abs(float(z.mean())) < 1e-5 and float(z.std()) == pytest.approx(1.0, abs=0.05)
    cfg.PS.SPNET.LOGITS = "layer_norm"
    with pytest.raises(ValueError, match="PS.SPNET.LOGITS"):
        build_logits_layer(cfg)
