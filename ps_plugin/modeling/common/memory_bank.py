"""Feature memories kept as buffers (so checkpoints carry them) and synchronised across ranks.

Every update first `all_gather`s the features of all ranks in rank order, then applies the same
deterministic update on every rank: the banks stay identical across ranks and equal to a
one-process run over the same global batch.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ps_plugin.utils.distributed import all_gather_tensor


class MemoryBank(nn.Module):
    """A table of `num_entries` L2-normalised D-dim features, updated with momentum.

    For every (feature f, entry index i) of the gathered batch, in order (OIM, Xiao et al. 2017,
    Sec. 3.2):  v_i <- normalize(m * v_i + (1 - m) * f).
    Buffers: `features` [num_entries, D], zero-initialised. num_entries = 0 is an unsized bank,
    given its rows later by `resize_` (an identity table sized from the training data or a checkpoint).
    """

    def __init__(self, num_entries, dim, momentum=0.5):
        super().__init__()
        if num_entries < 0:
            raise ValueError(f"MemoryBank needs num_entries >= 0, got {num_entries}")
        self.momentum = momentum
        self.register_buffer("features", torch.zeros(num_entries, dim))

    def resize_(self, num_entries):
        """Replace the table by `num_entries` zero rows (same D, dtype and device)."""
        self.features = self.features.new_zeros(num_entries, self.features.shape[1])

    @torch.no_grad()
    def update(self, features, indices):
        """features [N, D], indices [N] int64 in [0, num_entries). Every rank must call it."""
        features = all_gather_tensor(features)
        indices = all_gather_tensor(indices)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self.features)):
            raise IndexError(
                f"MemoryBank index out of range [0, {len(self.features)}): got {indices.tolist()}"
            )
        for feature, index in zip(features.to(self.features.dtype), indices.tolist()):
            entry = self.momentum * self.features[index] + (1.0 - self.momentum) * feature
            self.features[index] = F.normalize(entry, dim=0)


class FeatureQueue(nn.Module):
    """A circular queue of `size` D-dim features (OIM's unlabeled-identity queue).

    Buffers: `features` [size, D] (zero-initialised), `pointer` (scalar int64, next slot).
    """

    def __init__(self, size, dim):
        super().__init__()
        if size <= 0:
            raise ValueError(f"FeatureQueue needs size > 0, got {size}")
        self.register_buffer("features", torch.zeros(size, dim))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, features):
        """Write features [N, D] (gathered from all ranks, rank order) at the pointer, wrapping."""
        features = all_gather_tensor(features).to(self.features.dtype)
        size = len(self.features)
        num_new = len(features)
        slots = (self.pointer + torch.arange(num_new, device=self.features.device)) % size
        self.features[slots[-size:]] = features[-size:]
        self.pointer.fill_(int((self.pointer + num_new) % size))
