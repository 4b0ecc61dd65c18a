"""Cosine noise schedule and the forward marginal q(x_t | x_0) (paper eq. 7 and 10)."""
import math

import torch
from torch import nn


def cosine_alphas_cumprod(num_timesteps, s=0.008, max_beta=0.999):
    """ᾱ_t for t = 1..T as a float64 tensor [T] (Nichol & Dhariwal cosine schedule).

    f(t) = cos²(((t/T) + s) / (1 + s) · π/2); β_t = min(1 − f(t)/f(t−1), max_beta); ᾱ_t = Π_{i≤t} (1 − β_i).
    Index k of the result is the paper's t = k + 1; ᾱ decreases strictly from ≈1 to ≈0.
    """
    steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return torch.cumprod(1.0 - betas, dim=0)


class DiffusionSchedule(nn.Module):
    """ᾱ table [T] as a (non-persistent) buffer plus q(x_t | x_0) sampling.

    Timesteps are code indices t ∈ {0, …, T−1}, i.e. the paper's t − 1.
    """

    def __init__(self, num_timesteps=1000, s=0.008, max_beta=0.999):
        super().__init__()
        self.num_timesteps = num_timesteps
        self.register_buffer(
            "alphas_cumprod", cosine_alphas_cumprod(num_timesteps, s, max_beta).float(), persistent=False
        )

    def alpha_bar(self, t):
        """ᾱ at integer timesteps `t` (any shape; −1 gives 1.0, the clean signal)."""
        t = torch.as_tensor(t, device=self.alphas_cumprod.device)
        one = torch.ones((), device=t.device)
        return torch.where(t >= 0, self.alphas_cumprod[t.clamp(min=0)], one)

    def sample_timesteps(self, batch_size, device=None, generator=None):
        """One t ~ Uniform{0..T−1} per image: int64 [B]."""
        return torch.randint(0, self.num_timesteps, (batch_size,), device=device, generator=generator)

    def q_sample(self, x0, t, noise):
        """x_t = √ᾱ_t · x0 + √(1 − ᾱ_t) · ε (eq. 7).

        Args:
            x0: [B, ...] clean signal, already scaled (s1·(2b − 1) or s2·Norm(e0), eq. 10).
            t: int64 [B], one timestep per image (the same t for boxes and embeddings).
            noise: ε ~ N(0, I), shape of x0.
        """
        abar = self.alpha_bar(t).to(x0.dtype).view(-1, *([1] * (x0.dim() - 1)))
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise
