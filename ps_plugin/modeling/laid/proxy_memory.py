"""The identity proxies of L_cross (LAID eq. 4; DSCA's cluster-proxy memory): one L2-normalised row
per source identity, then one per target pseudo identity (cluster, or outlier on its own), then the
target hard negatives, which are never a target.

Rows [source | target | negatives]: source rows start as the mean embedding of each labelled source
identity and are kept across epochs; the target and negative rows are replaced at every target
epoch (stage 1). Source and target rows are updated online with momentum m (v <- m v + (1 - m) f,
renormalised; DSCA: 0.2), all-gathered over the ranks (MemoryBank). Every quantity is a buffer; the
number of rows changes with the clustering, so `size_from_state_dict` gives the table a
checkpoint's row count before the checkpoint is loaded (PersonSearchCheckpointer).
"""
import torch
import torch.nn.functional as F
from torch import nn

from ps_plugin.modeling.common.memory_bank import MemoryBank

from .dscl import cross_domain_contrastive_loss

__all__ = ["ProxyMemory"]


class ProxyMemory(nn.Module):
    """Buffers: bank.features [S + T + H, D], num_source (S), num_target (T) (int64 scalars)."""

    def __init__(self, dim, momentum=0.2, temperature=0.05):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"ProxyMemory needs temperature > 0 (PS.LAID.DSCL.CROSS_TEMPERATURE), got {temperature}")
        self.temperature = temperature
        self.bank = MemoryBank(0, dim, momentum)
        self.register_buffer("num_source", torch.zeros((), dtype=torch.long))
        self.register_buffer("num_target", torch.zeros((), dtype=torch.long))

    @property
    def proxies(self):
        """[S + T + H, D]."""
        return self.bank.features

    def size_from_state_dict(self, prefix, state_dict):
        """Resize the table to the row count stored under `prefix` in a model state dict."""
        saved = state_dict.get(f"{prefix}bank.features")
        if saved is not None and saved.ndim == 2 and saved.shape != self.proxies.shape:
            self.bank.resize_(len(saved))

    @torch.no_grad()
    def set_source(self, features):
        """Source rows <- features [S, D] (normalised); target and negative rows are dropped."""
        self.bank.features = F.normalize(features.to(self.proxies), dim=1)
        self.num_source.fill_(len(features))
        self.num_target.fill_(0)

    @torch.no_grad()
    def set_target(self, target, negatives):
        """Keep the source rows; target rows <- target [T, D], negative rows <- negatives [H, D]."""
        source = self.proxies[: int(self.num_source)]
        rows = torch.cat([source, F.normalize(target.to(source), dim=1), F.normalize(negatives.to(source), dim=1)])
        self.bank.features = rows
        self.num_target.fill_(len(target))

    def target_row(self, labels):
        """Pseudo labels [N] (0 .. T-1) -> their rows S + label."""
        return labels + int(self.num_source)

    def loss(self, embeddings, rows):
        """Eq. 4 over every row: embeddings [N, D] L2-normalised, rows [N] int64 (-1 ignored) -> scalar."""
        return cross_domain_contrastive_loss(embeddings, self.proxies.to(embeddings.dtype).clone(), rows, self.temperature)

    @torch.no_grad()
    def update(self, embeddings, rows):
        """Online momentum update of the labelled rows (rows >= 0; every rank calls it)."""
        keep = rows >= 0
        self.bank.update(embeddings[keep].detach(), rows[keep])
