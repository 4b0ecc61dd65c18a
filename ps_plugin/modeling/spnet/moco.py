"""Pre-training re-id loss: momentum contrast against momentum-network box centroids (Sec. 3.3)."""
import copy

import torch
import torch.nn.functional as F
from torch import nn

from ps_plugin.utils.distributed import all_gather_tensor


def label_centroids(embeddings, labels):
    """Mean embedding per label, L2-normalised: [N, D], [N] -> (unique labels [U], centroids [U, D])."""
    unique, inverse = torch.unique(labels, return_inverse=True)
    sums = embeddings.new_zeros(len(unique), embeddings.shape[1]).index_add_(0, inverse, embeddings)
    counts = torch.bincount(inverse, minlength=len(unique)).clamp(min=1).to(embeddings.dtype)
    return unique, F.normalize(sums / counts[:, None], dim=1)


def positive_centroids(embeddings, labels, is_gt, include_gt=False):
    """x_m-bar per identity: mean of the momentum embeddings of predicted boxes (IoU >= 0.7 to a
    GT box of that identity), L2-normalised (Sec. 3.3).

    embeddings [N, D] momentum embeddings of GT boxes (`is_gt` [N] True) and such predicted boxes,
    labels [N]. An identity without predicted boxes falls back to its GT embeddings;
    `include_gt=True` always averages the GT embeddings in (authors' code).
    -> (labels [U], centroids [U, D]) for every identity in `labels`.
    """
    use = ~is_gt if not include_gt else torch.ones_like(is_gt)
    has_pred = torch.zeros_like(is_gt)
    if (~is_gt).any():
        pred_labels = labels[~is_gt]
        has_pred = (labels[:, None] == pred_labels[None, :]).any(1)
    use = use | (is_gt & ~has_pred)
    return label_centroids(embeddings[use], labels[use])


class MomentumContrast(nn.Module):
    """MoCo re-id loss with a queue of identity centroids (Sec. 3.3, 4.2; He et al. 2020).

    Momentum copies of the backbone and the re-id Box Embedder (`momentum_backbone`,
    `momentum_embedder`, EMA m = 0.9999). Queue buffers: `queue` [Q, D], `queue_labels` [Q]
    (int64, `EMPTY` = unused), `pointer`. Each step enqueues the batch's centroids (one slot per
    identity: an older slot of the same identity is emptied), then the encoder embeddings x_e take
    the cross-entropy of sim(x_e, x_m-bar) / tau over every filled slot, with their own
    identity's centroid as the positive (eq. 1-2).
    """

    EMPTY = torch.iinfo(torch.int64).min

    def __init__(self, backbone, embedder, queue_size=65536, momentum=0.9999, temperature=0.1, include_gt=False):
        super().__init__()
        self.momentum = momentum
        self.temperature = temperature
        self.include_gt = include_gt
        self.momentum_backbone = _frozen_copy(backbone)
        self.momentum_embedder = _frozen_copy(embedder)
        self.register_buffer("queue", torch.zeros(queue_size, embedder.dim))
        self.register_buffer("queue_labels", torch.full((queue_size,), self.EMPTY, dtype=torch.int64))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.int64))

    def train(self, mode=True):
        super().train(mode)
        self.momentum_backbone.eval()
        self.momentum_embedder.eval()
        return self

    @torch.no_grad()
    def update_momentum(self, backbone, embedder):
        """theta_m <- m * theta_m + (1 - m) * theta_e for parameters; buffers are copied."""
        for source, target in ((backbone, self.momentum_backbone), (embedder, self.momentum_embedder)):
            for p_e, p_m in zip(source.parameters(), target.parameters()):
                p_m.mul_(self.momentum).add_(p_e.detach(), alpha=1.0 - self.momentum)
            for b_e, b_m in zip(source.buffers(), target.buffers()):
                b_m.copy_(b_e)

    @torch.no_grad()
    def embed(self, images, boxes):
        """Momentum embeddings: images [B, C, H, W], boxes list of B [N_i, 4] -> [sum N_i, D] L2-normalised."""
        features = self.momentum_backbone(images)
        return F.normalize(self.momentum_embedder(features, boxes), dim=1)

    @torch.no_grad()
    def enqueue(self, labels, centroids):
        """Write centroids [U, D] with labels [U] (gathered from every rank) at the pointer."""
        labels = all_gather_tensor(labels)
        centroids = all_gather_tensor(centroids).to(self.queue.dtype)
        stale = torch.isin(self.queue_labels, labels)
        self.queue_labels[stale] = self.EMPTY
        size = len(self.queue)
        slots = (self.pointer + torch.arange(len(labels), device=self.queue.device)) % size
        self.queue[slots[-size:]] = centroids[-size:]
        self.queue_labels[slots[-size:]] = labels[-size:]
        self.pointer.fill_(int((self.pointer + len(labels)) % size))

    def loss(self, embeddings, labels):
        """Contrastive loss of encoder embeddings [N, D] (L2-normalised) with identities [N] in the queue."""
        filled = self.queue_labels != self.EMPTY
        bank_labels = self.queue_labels[filled]
        logits = embeddings @ self.queue[filled].to(embeddings.dtype).t() / self.temperature
        match = labels[:, None] == bank_labels[None, :]
        has_positive = match.any(1)
        if not has_positive.any():
            return embeddings.sum() * 0.0
        targets = match.float().argmax(1)
        return F.cross_entropy(logits[has_positive], targets[has_positive])

    def forward(self, encoder_embeddings, momentum_embeddings, labels, is_gt):
        """Enqueue this batch's centroids, then the loss (encoder/momentum embeddings [N, D], labels [N])."""
        unique, centroids = positive_centroids(momentum_embeddings, labels, is_gt, self.include_gt)
        if self.training:
            self.enqueue(unique, centroids)
        return self.loss(encoder_embeddings, labels)


def _frozen_copy(module):
    copied = copy.deepcopy(module)
    for p in copied.parameters():
        p.requires_grad_(False)
    return copied.eval()
