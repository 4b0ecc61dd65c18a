"""SpCL's hybrid cluster memory (Ge et al., "Self-paced Contrastive Learning with Hybrid Memory",
NeurIPS 2020) and the interface a model offers the memory-init and epoch-clustering hooks
(ps_plugin.engine.hooks) when it learns from pseudo labels.

Everything the hooks and the loss read is a buffer, so a checkpoint carries it: the slot features,
their pseudo labels, the number of slots and the last clustered epoch. Updates all-gather the
features of every rank (MemoryBank), labels are computed on rank 0 and broadcast, so every rank
holds the same memory as a one-process run over the same global batch.
"""
from abc import ABC, abstractmethod
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .memory_bank import MemoryBank

__all__ = ["ClusterMemoryModel", "HybridClusterMemory", "PseudoLabelState"]


class HybridClusterMemory(nn.Module):
    """One L2-normalised D-dim slot per training instance plus its pseudo label.

    Classes are the labels: clusters 0 .. C-1 and one label per un-clustered instance (SpCL's
    hybrid memory). For a feature x of slot s with label y = labels[s] (SpCL eq. 4-5):
        logit_c = mean over slots j with labels[j] = c of  x . v_j / tau
        loss    = -log softmax(logit)_y
    Buffers: bank.features [N, D] (momentum update v <- m v + (1 - m) x, renormalised;
    SpCL: m 0.2), labels [N] int64 (initially every slot its own class).
    """

    def __init__(self, num_entries, dim, momentum=0.2, temperature=0.05):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"HybridClusterMemory needs temperature > 0 (PS.OLA.MEMORY.TEMPERATURE), got {temperature}")
        self.temperature = temperature
        self.bank = MemoryBank(num_entries, dim, momentum)
        self.register_buffer("labels", torch.arange(num_entries))

    @property
    def features(self):
        return self.bank.features

    def __len__(self):
        return len(self.bank.features)

    def loss(self, x, slots):
        """x [B, D] L2-normalised (with graph), slots [B] int64 -> scalar loss (0 with a graph when B = 0)."""
        if len(x) == 0:
            return x.sum() * 0.0
        bank = self.features.to(x.dtype, copy=True)  # autograd keeps it; update() then edits the buffer
        similarity = x @ bank.t() / self.temperature  # [B, N]
        num_classes = int(self.labels.max()) + 1
        sums = similarity.new_zeros(len(x), num_classes).index_add_(1, self.labels, similarity)
        counts = torch.bincount(self.labels, minlength=num_classes).to(x.dtype)
        return F.cross_entropy(sums / counts.clamp(min=1), self.labels[slots])

    @torch.no_grad()
    def update(self, x, slots):
        """Momentum update of the slots (a collective: every rank calls it, features all-gathered)."""
        self.bank.update(x, slots)

    @torch.no_grad()
    def write(self, x, slots):
        """Set slots to x [K, D] (normalised) outright: the memory's initial state."""
        self.features[slots] = F.normalize(x.to(self.features.dtype), dim=1)

    @torch.no_grad()
    def set_labels(self, labels):
        labels = torch.as_tensor(labels, dtype=torch.long, device=self.labels.device)
        if labels.shape != self.labels.shape:
            raise ValueError(f"{len(labels)} pseudo labels for a memory of {len(self.labels)} slots")
        self.labels.copy_(labels)


class PseudoLabelState(nn.Module):
    """Buffers that let the hooks resume exactly: `num_slots` (the training boxes the memory was
    filled with, 0 before the memory-init hook ran) and `epoch` (last clustered epoch, -1 none)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("num_slots", torch.zeros((), dtype=torch.long))
        self.register_buffer("epoch", torch.full((), -1, dtype=torch.long))


class ClusterMemoryModel(ABC):
    """What the memory-init and epoch-clustering hooks (ps_plugin.engine.hooks) need from a model
    trained with pseudo labels. The trainer registers both hooks for every model with this base.

    The model numbers the training boxes: slot = offset of the record + the box's index in the
    record's "annotations" (the mapper's gt_box_ids), over the training records in dataset order.
    """

    pseudo_label_state: PseudoLabelState

    @abstractmethod
    def index_training_boxes(self, records: Sequence[dict]) -> int:
        """Number the boxes of the training records (dataset order); returns their count. Raises a
        ValueError naming the datasets and both counts when it differs from the memory's size."""

    @abstractmethod
    def extract_memory_features(self, batched_inputs: List[dict]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Eval-mode features of every ground-truth box of the (test-mapped) training inputs ->
        (slots [K] int64, {memory name: features [K, D]})."""

    @abstractmethod
    def write_memory(self, slots: torch.Tensor, features: Dict[str, torch.Tensor]) -> None:
        """Initial state of the memories: slots [K] <- features (every rank, same values)."""

    @abstractmethod
    def pseudo_labels(self, epoch: int) -> Tuple[np.ndarray, dict]:
        """Labels for training epoch `epoch`, by clustering the memory (runs on rank 0 only) -> (labels
        [num_slots] int64, statistics dict)."""

    @abstractmethod
    def set_pseudo_labels(self, labels: torch.Tensor) -> None:
        """Give every memory the labels (every rank, after the broadcast)."""
