"""PSDiff diffusion maths: cosine schedule, dual noise generator (eq. 10), DDIM and DPM-Solver++ updates,
time pairs and box renewal."""
import math

import pytest
import torch
import torch.nn.functional as F

from ps_plugin.modeling.psdiff import (
    DDIMSampler,
    DiffusionSchedule,
    DPMSolverPlusPlusSampler,
    cosine_alphas_cumprod,
    ddim_step,
    dpm_solver_pp_step,
    sampling_timesteps,
)
from ps_plugin.modeling.psdiff.sampler import renew_rows
from ps_plugin.modeling.psdiff.noise_generator import DualNoiseGenerator, fill_to_num_proposals
from ps_plugin.modeling.psdiff.signal_coding import embedding_signal_scale


def test_cosine_alpha_bar_is_strictly_decreasing_from_one_to_zero():
    abar = cosine_alphas_cumprod(1000)
    assert abar.shape == (1000,)
    assert torch.all(abar[1:] < abar[:-1])
    assert abar[0] > 0.9999 and abar[-1] < 1e-6
    # Cosine schedule midpoint: f(T/2)/f(0) = cos²((0.5 + s)/(1 + s)·π/2) ≈ 0.4938.
    s = 0.008
    expected_mid = math.cos((0.5 + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    assert abar[499].item() == pytest.approx(expected_mid, abs=1e-4)


def test_alpha_bar_of_minus_one_is_clean_signal():
    schedule = DiffusionSchedule(1000)
    assert schedule.alpha_bar(-1).item() == 1.0
    assert schedule.alpha_bar(torch.tensor([0, 999])).tolist() == pytest.approx(schedule.alphas_cumprod[[0, 999]].tolist())


@pytest.mark.parametrize("t", [50, 500, 900])
def test_noisy_boxes_and_embeddings_have_eq10_moments(t):
    schedule = DiffusionSchedule(1000)
    s1, s2, n = 2.0, 3.0, 40000
    generator = DualNoiseGenerator(schedule, n, s1, s2, "repeat")
    box = torch.tensor([[0.4, 0.6, 0.2, 0.5]])
    e0 = torch.tensor([[3.0, -4.0, 0.0, 12.0]])
    out = generator([box], [e0], generator=torch.Generator().manual_seed(t), timesteps=torch.tensor([t]))
    abar = schedule.alphas_cumprod[t].item()
    tol = 5 * math.sqrt(1 - abar) / math.sqrt(n)
    boxes, embeddings = out["boxes"][0], out["embeddings"][0]
    assert boxes.mean(0).tolist() == pytest.approx((s1 * math.sqrt(abar) * (box[0] * 2 - 1)).tolist(), abs=tol)
    assert boxes.var(0).tolist() == pytest.approx([1 - abar] * 4, rel=0.05)
    expected_e = s2 * math.sqrt(abar) * F.normalize(e0[0], dim=0)
    assert embeddings.mean(0).tolist() == pytest.approx(expected_e.tolist(), abs=tol)
    assert embeddings.var(0).tolist() == pytest.approx([1 - abar] * 4, rel=0.05)


def test_boxes_and_embeddings_share_one_timestep_per_image():
    schedule = DiffusionSchedule(1000)
    calls = []
    q_sample = schedule.q_sample
    schedule.q_sample = lambda x0, t, noise: calls.append(t.clone()) or q_sample(x0, t, noise)
    generator = DualNoiseGenerator(schedule, 10, 2.0, 3.0)
    out = generator([torch.rand(2, 4), torch.rand(3, 4)], [torch.randn(2, 8), torch.randn(3, 8)])
    assert len(calls) == 2 and torch.equal(calls[0], calls[1]) and torch.equal(calls[0], out["timesteps"])
    assert out["boxes"].shape == (2, 10, 4) and out["embeddings"].shape == (2, 10, 8)


def test_uniform_duplication_reaches_n_with_balanced_copies():
    boxes, embeddings = torch.rand(7, 4), torch.randn(7, 5)
    filled_boxes, filled_emb = fill_to_num_proposals(boxes, embeddings, 300, "repeat")
    assert filled_boxes.shape == (300, 4) and filled_emb.shape == (300, 5)
    counts = torch.stack([(filled_boxes == b).all(dim=1).sum() for b in boxes])
    assert counts.sum() == 300 and counts.min() == 300 // 7 and counts.max() == 300 // 7 + 1
    for b, e in zip(filled_boxes, filled_emb):  # every box keeps its own embedding
        j = (boxes == b).all(dim=1).nonzero()[0, 0]
        assert torch.equal(e, embeddings[j])


def test_fill_pads_empty_image_and_subsamples_crowded_one():
    boxes, embeddings = fill_to_num_proposals(torch.zeros(0, 4), torch.zeros(0, 6), 50, "repeat")
    assert boxes.shape == (50, 4) and torch.all(boxes[:, 2:] >= 1e-4)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(50))
    boxes, _ = fill_to_num_proposals(torch.rand(80, 4), torch.randn(80, 6), 50, "repeat")
    assert boxes.shape == (50, 4) and len(torch.unique(boxes, dim=0)) == 50
    gt = torch.rand(3, 4)
    boxes, _ = fill_to_num_proposals(gt, torch.randn(3, 6), 20, "concat")
    assert torch.equal(boxes[:3], gt)
    with pytest.raises(ValueError, match="GT_FILL"):
        fill_to_num_proposals(gt, torch.randn(3, 6), 20, "tile")


def test_ddim_step_with_eta_zero_matches_closed_form():
    torch.manual_seed(0)
    abar_t, abar_next = 0.3, 0.8
    x0, eps = torch.randn(5, 4), torch.randn(5, 4)
    x_t = math.sqrt(abar_t) * x0 + math.sqrt(1 - abar_t) * eps
    out = ddim_step(x_t, x0, abar_t, abar_next, eta=0.0, noise=torch.randn(5, 4))
    # Deterministic DDIM with the true x0 moves along the same ε: x_next = √ᾱ'·x0 + √(1−ᾱ')·ε.
    assert torch.allclose(out, math.sqrt(abar_next) * x0 + math.sqrt(1 - abar_next) * eps, atol=1e-6)


def test_ddim_step_noise_scale_is_eta_sigma():
    abar_t, abar_next, eta = 0.3, 0.8, 1.0
    x_t, x0, z = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    diff = ddim_step(x_t, x0, abar_t, abar_next, eta, z) - ddim_step(x_t, x0, abar_t, abar_next, eta, torch.zeros(3, 4))
    sigma = math.sqrt((1 - abar_t / abar_next) * (1 - abar_next) / (1 - abar_t))
    assert torch.allclose(diff, sigma * z, atol=1e-6)


def _ddim_reference(x_t, x0, abar, abar_next, eta, z):
    """Song et al. eq. 12 in float64: ε̂ = (x_t − √ᾱ·x0)/√(1 − ᾱ),
    σ² = η²(1 − ᾱ')/(1 − ᾱ)·(1 − ᾱ/ᾱ'), x' = √ᾱ'·x0 + √(1 − ᾱ' − σ²)·ε̂ + σ·z."""
    x_t, x0, z = x_t.double(), x0.double(), z.double()
    eps_hat = (x_t - abar**0.5 * x0) / (1 - abar) ** 0.5
    sigma2 = eta**2 * (1 - abar_next) / (1 - abar) * (1 - abar / abar_next)
    return abar_next**0.5 * x0 + (1 - abar_next - sigma2) ** 0.5 * eps_hat + sigma2**0.5 * z


@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_ddim_step_with_eta_matches_hand_reference(eta):
    """One step 499 -> 374 of the 8-step chain, from the schedule's ᾱ, with fixed noise z."""
    schedule = DiffusionSchedule(1000)
    abar, abar_next = schedule.alphas_cumprod[499].item(), schedule.alphas_cumprod[374].item()
    x_t, x0, z = torch.randn(3, 3, 4, generator=torch.Generator().manual_seed(0))
    expected = _ddim_reference(x_t, x0, abar, abar_next, eta, z)
    assert torch.allclose(ddim_step(x_t, x0, abar, abar_next, eta, z).double(), expected, atol=1e-5)
    if eta == 1.0:
        # η = 1 is ancestral sampling from the forward posterior q(x' | x_t, x0) (Ho et al. eq. 6-7 with
        # ᾱ_t/ᾱ_t' for α_t): mean (√ᾱ'(1 − ᾱ/ᾱ')·x0 + √(ᾱ/ᾱ')(1 − ᾱ')·x_t)/(1 − ᾱ),
        # variance (1 − ᾱ')/(1 − ᾱ)·(1 − ᾱ/ᾱ').
        ratio = abar / abar_next
        mean = (abar_next**0.5 * (1 - ratio) * x0.double() + ratio**0.5 * (1 - abar_next) * x_t.double()) / (1 - abar)
        posterior = mean + ((1 - abar_next) / (1 - abar) * (1 - ratio)) ** 0.5 * z.double()
        assert torch.allclose(expected, posterior, atol=1e-10)
    # the sampler's update draws z from its generator and reads ᾱ from the schedule (default η = 1)
    sampler = DDIMSampler(schedule, num_steps=8) if eta == 1.0 else DDIMSampler(schedule, num_steps=8, eta=eta)
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(5))
    out = sampler._update("boxes", x_t, x0, 499, 374, torch.Generator().manual_seed(5))
    assert torch.allclose(out.double(), _ddim_reference(x_t, x0, abar, abar_next, eta, noise), atol=1e-5)


def test_dpm_solver_pp_first_order_is_ddim_with_eta_zero():
    torch.manual_seed(0)
    x_t, x0 = torch.randn(5, 4), torch.randn(5, 4)
    expected = ddim_step(x_t, x0, 0.3, 0.8, eta=0.0, noise=torch.randn(5, 4))
    assert torch.allclose(dpm_solver_pp_step(x_t, x0, 0.3, 0.8), expected, atol=1e-6)


def _gaussian_data_chain(update, num_steps, variance=0.25):
    """Solve the probability-flow ODE of 1-D data x0 ~ N(0, variance) from x_T = 1 along DiffusionDet's
    time pairs with the exact x0 predictor E[x0 | x_t] = √ᾱ·v·x_t / (ᾱ·v + 1 − ᾱ); returns (x, exact x)
    at the last t_next >= 0. The exact solution is x_t ∝ √(ᾱ_t·v + 1 − ᾱ_t)."""
    schedule = DiffusionSchedule(1000)

    def abar(t):
        return float(schedule.alpha_bar(t))

    pairs = [(t, t_next) for t, t_next in sampling_timesteps(1000, num_steps) if t_next >= 0]
    x, history = torch.ones(1), None
    for t, t_next in pairs:
        x0 = math.sqrt(abar(t)) * variance * x / (abar(t) * variance + 1 - abar(t))
        x = update(x, x0, abar(t), abar(t_next), history)
        history = (x0, abar(t))
    first, last = pairs[0][0], pairs[-1][1]
    exact = math.sqrt((abar(last) * variance + 1 - abar(last)) / (abar(first) * variance + 1 - abar(first)))
    return x.item(), exact


def test_dpm_solver_pp_second_order_beats_ddim_on_gaussian_data():
    def ddim(x, x0, a, a_next, history):
        return ddim_step(x, x0, a, a_next, 0.0, torch.zeros(1))

    def second_order(x, x0, a, a_next, history):
        if history is None:
            return dpm_solver_pp_step(x, x0, a, a_next)
        return dpm_solver_pp_step(x, x0, a, a_next, history[0], history[1])

    # error of DPM-Solver++(2M) / error of DDIM: < 1 at 4 steps (0.61 measured), < 0.2 at 8 (0.07 measured).
    for steps, max_ratio in ((4, 1.0), (8, 0.2)):
        x_ddim, exact = _gaussian_data_chain(ddim, steps)
        x_dpm, _ = _gaussian_data_chain(second_order, steps)
        assert abs(x_dpm - exact) < max_ratio * abs(x_ddim - exact), (steps, x_dpm, x_ddim, exact)


def test_dpm_solver_pp_rows_without_history_stay_first_order():
    torch.manual_seed(0)
    x_t, x0, x0_prev = torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 3)
    has_prev = torch.tensor([True, False, True, False]).unsqueeze(-1)
    out = dpm_solver_pp_step(x_t, x0, 0.3, 0.8, x0_prev, 0.1, has_prev)
    first = dpm_solver_pp_step(x_t, x0, 0.3, 0.8)
    second = dpm_solver_pp_step(x_t, x0, 0.3, 0.8, x0_prev, 0.1)
    assert torch.allclose(out[~has_prev[:, 0]], first[~has_prev[:, 0]])
    assert torch.allclose(out[has_prev[:, 0]], second[has_prev[:, 0]])
    assert not torch.allclose(first, second)


def test_renew_rows_keeps_rows_in_order_then_fills():
    tensor = torch.arange(12.0).view(2, 3, 2)
    keep = torch.tensor([[False, True, True], [True, False, False]])
    out = renew_rows(tensor, keep, fill_value=-1.0)
    assert torch.equal(out[0], torch.tensor([[2.0, 3.0], [4.0, 5.0], [-1.0, -1.0]]))
    assert torch.equal(out[1], torch.tensor([[6.0, 7.0], [-1.0, -1.0], [-1.0, -1.0]]))
    assert renew_rows(tensor, keep, generator=torch.Generator().manual_seed(0)).shape == (2, 3, 2)


def test_dpm_solver_pp_sampler_reorders_its_history_on_box_renewal():
    sampler = DPMSolverPlusPlusSampler(DiffusionSchedule(1000), num_steps=4, renewal_thresh=0.5)
    x0 = torch.arange(6.0).view(1, 3, 2)
    sampler._update("boxes", torch.zeros(1, 3, 2), x0, 999, 749, None)
    logits = torch.tensor([[[-5.0], [5.0], [5.0]]])  # box 0 is renewed, boxes 1 and 2 are kept
    (signal,) = sampler._renew([torch.ones(1, 3, 2)], logits, torch.Generator().manual_seed(0))
    x0_prev, t_prev, has_prev = sampler._previous["boxes"]
    assert torch.equal(signal[0, :2], torch.ones(2, 2)) and t_prev == 999
    assert torch.equal(x0_prev[0, :2], x0[0, 1:]) and has_prev[0, :, 0].tolist() == [True, True, False]


def test_sampling_timesteps_follow_diffusiondet():
    assert sampling_timesteps(1000, 1) == [(999, -1)]
    assert sampling_timesteps(1000, 2) == [(999, 499), (499, -1)]
    pairs = sampling_timesteps(1000, 8)
    assert [t for t, _ in pairs] == [999, 874, 749, 624, 499, 374, 249, 124] and pairs[-1][1] == -1
    with pytest.raises(ValueError, match="SAMPLE_STEPS"):
        sampling_timesteps(1000, 0)


@pytest.mark.parametrize("reading", ["unit", "sqrt_dim"])
def test_embedding_signal_readings_carry_their_stated_per_element_signal(reading):
    """Eq. 10 at t = 500 with D = 256, s2 = 3: "unit" (s2·Norm(e0)) puts s2·√ᾱ/√D ≈ 0.13 per element
    against noise of std √(1 − ᾱ) ≈ 0.71, cos(e_t, e0) ≈ 0.18; "sqrt_dim" (s2·√D·Norm(e0)) puts
    s2·√ᾱ ≈ 2.1 per element (root mean square), cos(e_t, e0) ≈ 0.95."""
    dim, s2, t, n = 256, 3.0, 500, 2000
    schedule = DiffusionSchedule(1000)
    abar = schedule.alphas_cumprod[t].item()
    scale = embedding_signal_scale(s2, dim, reading)
    e0 = torch.randn(1, dim, generator=torch.Generator().manual_seed(1))
    out = DualNoiseGenerator(schedule, n, 2.0, scale)(
        [torch.rand(1, 4)], [e0], generator=torch.Generator().manual_seed(0), timesteps=torch.tensor([t])
    )
    embeddings = out["embeddings"][0]
    per_element = s2 * math.sqrt(abar) / (math.sqrt(dim) if reading == "unit" else 1.0)
    signal = embeddings.mean(0)  # the n noisy copies of one GT average to s·√ᾱ·Norm(e0)
    assert signal.pow(2).mean().sqrt().item() == pytest.approx(per_element, rel=0.05)
    assert F.cosine_similarity(signal, e0[0], dim=0).item() > 0.98
    assert (embeddings - signal).std().item() == pytest.approx(math.sqrt(1 - abar), rel=0.02)
    expected_cos = per_element / math.sqrt(per_element**2 + 1 - abar)
    assert F.cosine_similarity(embeddings, e0, dim=1).mean().item() == pytest.approx(expected_cos, rel=0.03)
    assert expected_cos == pytest.approx(0.18 if reading == "unit" else 0.95, abs=0.01)


def test_unknown_embedding_signal_reading_is_a_clear_error():
    with pytest.raises(ValueError, match="EMBED_SIGNAL"):
        embedding_signal_scale(3.0, 256, "sqrt")
