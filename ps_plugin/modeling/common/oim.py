"""Online Instance Matching loss (Xiao et al., "Joint Detection and Identification Feature
Learning for Person Search", CVPR 2017, Sec. 3.2)."""
import torch
import torch.nn.functional as F
from torch import nn

from .memory_bank import FeatureQueue, MemoryBank


class OIMLoss(nn.Module):
    """OIM: a labeled lookup table (LUT) and an unlabeled circular queue (CQ).

    For an L2-normalised feature x with identity t (Eq. 1-2 of the paper):
        logits = scalar * x [V; U]^T            V: LUT [num_pids, D], U: CQ [queue_size, D]
        loss   = -log softmax(logits)_t          (mean over labeled features only)
    scalar = 1 / temperature (paper: temperature 1/30, i.e. scalar 30).
    After the loss, labeled features update their LUT rows with momentum and are renormalised;
    unlabeled features are pushed into the queue. Both are buffers (see MemoryBank).
    """

    def __init__(self, num_pids, queue_size, dim, momentum=0.5, scalar=30.0):
        super().__init__()
        self.scalar = scalar
        self.lut = MemoryBank(num_pids, dim, momentum)
        self.queue = FeatureQueue(queue_size, dim)

    @property
    def num_pids(self):
        return len(self.lut.features)

    def forward(self, features, pids):
        """features [N, D] L2-normalised; pids [N] int64 (>= 0 labeled, -1 unlabeled).

        Returns the scalar loss (0 with a graph to `features` when nothing is labeled) and, in
        training mode, updates the LUT and the queue (a collective call: every rank must call it).
        """
        if pids.numel() and pids.max() >= self.num_pids:
            raise ValueError(
                f"OIM: identity row {int(pids.max())} >= the lookup table size {self.num_pids}. Rows are "
                "table rows, not raw person ids: PersonSearchTrainer maps each training set's ids to "
                "contiguous rows and sizes the table (PS.REID.NUM_PIDS 0). If you feed the model yourself, "
                "relabel with ps_plugin.data.IdentityMap and set PS.REID.NUM_PIDS >= its num_rows."
            )
        labeled = pids >= 0
        bank = torch.cat([self.lut.features, self.queue.features]).to(features.dtype)
        logits = self.scalar * features[labeled] @ bank.t()
        if labeled.any():
            loss = F.cross_entropy(logits, pids[labeled])
        else:
            loss = features.sum() * 0.0
        if self.training:
            self.lut.update(features[labeled], pids[labeled])
            self.queue.enqueue(features[~labeled])
        return loss
