"""Timestep embedding of the denoiser (DiffusionDet: sinusoid -> Linear -> GELU -> Linear)."""
import math

import torch
from torch import nn


def sinusoidal_embedding(t, dim):
    """Transformer sinusoid of integer timesteps: t [B] -> [B, dim] (sin half, cos half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1))
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class TimestepEmbedding(nn.Module):
    """t [B] -> [B, 4·dim], shared by every CDL stage."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), nn.GELU(), nn.Linear(dim * 4, dim * 4))

    @property
    def out_dim(self):
        return self.dim * 4

    def forward(self, t):
        return self.mlp(sinusoidal_embedding(t, self.dim))
