"""Iterative refinement at inference (paper Algorithm 2) with DDIM or DPM-Solver++, box renewal and
step ensembling."""
import math

import torch

from .signal_coding import boxes_to_signal, embeddings_to_signal, signal_to_boxes, signal_to_embeddings


def sampling_timesteps(num_timesteps, num_steps):
    """DiffusionDet's (t, t_next) pairs: linspace(−1, T−1, steps+1) reversed, truncated to int.

    8 steps of T = 1000: (999, 874), (874, 749), …, (124, −1); t_next = −1 ends the chain.
    """
    if num_steps < 1 or num_steps > num_timesteps:
        raise ValueError(f"cfg.PS.PSDIFF.SAMPLE_STEPS={num_steps}: use 1..{num_timesteps} (paper: 1, 2, 4 or 8)")
    times = torch.linspace(-1, num_timesteps - 1, num_steps + 1).long().flip(0).tolist()
    return list(zip(times[:-1], times[1:]))


def ddim_step(x_t, x0, alpha_bar, alpha_bar_next, eta, noise):
    """One DDIM update x_t -> x_{t_next} given the predicted x0 (Song et al., eq. 12).

    ε̂ = (x_t − √ᾱ_t·x0) / √(1 − ᾱ_t);  σ = η·√((1 − ᾱ_t/ᾱ_next)(1 − ᾱ_next)/(1 − ᾱ_t));
    x_next = √ᾱ_next·x0 + √(1 − ᾱ_next − σ²)·ε̂ + σ·z. With η = 0 the update is deterministic.
    """
    eps = (x_t - math.sqrt(alpha_bar) * x0) / math.sqrt(1 - alpha_bar)
    sigma = eta * math.sqrt((1 - alpha_bar / alpha_bar_next) * (1 - alpha_bar_next) / (1 - alpha_bar))
    c = math.sqrt(max(1 - alpha_bar_next - sigma**2, 0.0))
    return math.sqrt(alpha_bar_next) * x0 + c * eps + sigma * noise


def half_log_snr(alpha_bar):
    """λ = log(α/σ) = ½·log(ᾱ / (1 − ᾱ)) for 0 < ᾱ < 1."""
    return 0.5 * math.log(alpha_bar / (1 - alpha_bar))


def dpm_solver_pp_step(x_t, x0, alpha_bar, alpha_bar_next, x0_prev=None, alpha_bar_prev=None, has_prev=None):
    """One DPM-Solver++ update x_t -> x_{t_next} from data (x0) predictions (Lu et al. 2022b).

    h = λ_next − λ_t. First order: x_next = (σ_next/σ_t)·x_t − α_next·(e^{−h} − 1)·x0, which is DDIM
    with η = 0. Multistep second order (2M), given the previous step's prediction x0_prev made at
    ᾱ_prev: r = (λ_t − λ_prev)/h and D = (1 + 1/(2r))·x0 − x0_prev/(2r) replaces x0. Rows where the
    boolean `has_prev` (broadcastable to x0) is False stay first order.
    """
    h = half_log_snr(alpha_bar_next) - half_log_snr(alpha_bar)
    data = x0
    if x0_prev is not None:
        r = (half_log_snr(alpha_bar) - half_log_snr(alpha_bar_prev)) / h
        second = (1 + 1 / (2 * r)) * x0 - x0_prev / (2 * r)
        data = second if has_prev is None else torch.where(has_prev, second, x0)
    return math.sqrt((1 - alpha_bar_next) / (1 - alpha_bar)) * x_t - math.sqrt(alpha_bar_next) * math.expm1(-h) * data


class DDIMSampler:
    """Denoise N_test Gaussian boxes and embeddings into detections and re-id embeddings.

    `denoise(boxes [B, N, 4] XYXY, reid [B, N, D], t [B])` is the denoiser's last-stage output
    dict ("pred_logits", "pred_boxes", "pred_embeddings"); it is called once per step.
    """

    def __init__(
        self,
        schedule,
        num_steps=8,
        eta=1.0,
        box_scale=2.0,
        embed_scale=3.0,
        box_renewal=True,
        renewal_thresh=0.5,
        ensemble=False,
    ):
        self.schedule = schedule
        self.time_pairs = sampling_timesteps(schedule.num_timesteps, num_steps)
        self.eta = eta
        self.box_scale, self.embed_scale = box_scale, embed_scale
        self.box_renewal, self.renewal_thresh = box_renewal, renewal_thresh
        self.ensemble = ensemble

    def _alpha_bar(self, t):
        return float(self.schedule.alpha_bar(t))

    def _denoise_step(self, denoise, box_signal, embed_signal, whwh, t):
        """Decode the signals, run the denoiser at timestep t, return (outputs, x0_box, x0_embed)."""
        boxes = signal_to_boxes(box_signal, whwh, self.box_scale)
        reid = signal_to_embeddings(embed_signal, self.embed_scale)
        timesteps = torch.full((box_signal.shape[0],), t, dtype=torch.long, device=box_signal.device)
        out = denoise(boxes, reid, timesteps)
        x0_box = boxes_to_signal(out["pred_boxes"], whwh, self.box_scale).clamp(-self.box_scale, self.box_scale)
        x0_embed = embeddings_to_signal(out["pred_embeddings"], self.embed_scale)
        return out, x0_box, x0_embed

    def _begin(self):
        """Called at the start of every sampling chain (DDIM keeps no state between steps)."""

    def _update(self, stream, x_t, x0, t, t_next, generator):
        """x_t -> x_{t_next} of one stream ("boxes" or "embeddings") given the predicted x0."""
        noise = torch.randn(x_t.shape, device=x_t.device, generator=generator)
        return ddim_step(x_t, x0, self._alpha_bar(t), self._alpha_bar(t_next), self.eta, noise)

    def _renew(self, signals, logits, generator):
        """Keep the boxes whose score > renewal_thresh (per image) and refill with N(0, I) (DiffusionDet)."""
        keep = logits.sigmoid().amax(dim=-1) > self.renewal_thresh
        self._on_renewal(keep)
        return [renew_rows(signal, keep, generator=generator) for signal in signals]

    def _on_renewal(self, keep):
        """Hook for samplers with per-box state: the rows box renewal keeps, bool [B, N] (DDIM has none)."""

    @torch.no_grad()
    def sample(self, denoise, whwh, num_boxes, embed_dim, generator=None):
        """
        Args:
            whwh: [B, 4] unpadded image sizes; num_boxes: N_test; embed_dim: D.
        Returns:
            list of the outputs (dicts of [B, N, k]) of every step when ensembling, else [last step's].
        """
        self._begin()
        shape = (whwh.shape[0], num_boxes)
        box_signal = torch.randn(*shape, 4, device=whwh.device, generator=generator)
        embed_signal = torch.randn(*shape, embed_dim, device=whwh.device, generator=generator)
        step_outputs = []
        for t, t_next in self.time_pairs:
            out, x0_box, x0_embed = self._denoise_step(denoise, box_signal, embed_signal, whwh, t)
            step_outputs.append(out)
            if t_next < 0:
                continue
            box_signal = self._update("boxes", box_signal, x0_box, t, t_next, generator)
            embed_signal = self._update("embeddings", embed_signal, x0_embed, t, t_next, generator)
            if self.box_renewal:
                box_signal, embed_signal = self._renew((box_signal, embed_signal), out["pred_logits"], generator)
        return step_outputs if self.ensemble else step_outputs[-1:]

    @torch.no_grad()
    def sample_embeddings(self, denoise, boxes, embed_dim, generator=None):
        """Query pass: denoise only the embeddings while the box channel stays the given boxes.

        Args:
            boxes: [B, K, 4] XYXY query boxes in the input image.
        Returns:
            ê0 [B, K, D] of the last step (raw; normalise for search).
        """
        self._begin()
        embed_signal = torch.randn(*boxes.shape[:2], embed_dim, device=boxes.device, generator=generator)
        for t, t_next in self.time_pairs:
            reid = signal_to_embeddings(embed_signal, self.embed_scale)
            timesteps = torch.full((boxes.shape[0],), t, dtype=torch.long, device=boxes.device)
            embeddings = denoise(boxes, reid, timesteps)["pred_embeddings"]
            if t_next >= 0:
                x0_embed = embeddings_to_signal(embeddings, self.embed_scale)
                embed_signal = self._update("embeddings", embed_signal, x0_embed, t, t_next, generator)
        return embeddings


def renew_rows(tensor, keep, fill_value=None, generator=None):
    """Per image, the kept rows first, then new rows: N(0, I) draws, or `fill_value` when given.

    Args:
        tensor: [B, N, k]; keep: bool [B, N].
    Returns:
        [B, N, k].
    """
    rows = []
    for i in range(tensor.shape[0]):
        kept = tensor[i, keep[i]]
        shape = (tensor.shape[1] - kept.shape[0], tensor.shape[2])
        if fill_value is None:
            fresh = torch.randn(shape, device=tensor.device, generator=generator)
        else:
            fresh = torch.full(shape, fill_value, dtype=tensor.dtype, device=tensor.device)
        rows.append(torch.cat([kept, fresh]))
    return torch.stack(rows)


class DPMSolverPlusPlusSampler(DDIMSampler):
    """DDIMSampler with DPM-Solver++ updates (deterministic; paper Table V): multistep second order
    (2M) from the second step on, first order (= DDIM, η = 0) on the first step and for boxes that box
    renewal has just replaced (they have no previous prediction)."""

    def __init__(self, schedule, num_steps=8, **kwargs):
        super().__init__(schedule, num_steps=num_steps, eta=0.0, **kwargs)
        self._begin()

    def _begin(self):
        self._previous = {}

    def _update(self, stream, x_t, x0, t, t_next, generator):
        x0_prev, t_prev, has_prev = self._previous.get(stream, (None, None, None))
        alpha_bar_prev = None if t_prev is None else self._alpha_bar(t_prev)
        self._previous[stream] = (x0, t, torch.ones_like(x0[..., :1], dtype=torch.bool))
        return dpm_solver_pp_step(
            x_t, x0, self._alpha_bar(t), self._alpha_bar(t_next), x0_prev, alpha_bar_prev, has_prev
        )

    def _on_renewal(self, keep):
        """Reorder the previous predictions like the signals; renewed boxes lose theirs."""
        for stream, (x0_prev, t_prev, has_prev) in self._previous.items():
            has_prev = renew_rows(has_prev, keep, fill_value=False)
            self._previous[stream] = (renew_rows(x0_prev, keep, fill_value=0.0), t_prev, has_prev)
