"""Dual-Scope Contrastive Learning (DSCL, LAID eq. 4-9): a global contrastive loss over source and
target identity proxies (L_cross) plus an in-image spatial separation loss (L_intra).

L_intra rests on a geometric prior: two foreground proposals of one image that do not overlap
(IoU <= theta, after union-find grouping, Algorithm 1) show different people, so their embeddings
are pushed below a similarity margin gamma, the most similar pairs weighted most (eq. 8).
"""
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from torch import nn

from .caim import box_iou
from .config import check_laid_config


def union_find_groups(boxes, theta):
    """Algorithm 1 / eq. 5: connected components of the graph "IoU > theta".

    boxes [M, 4] XYXY -> group labels [M] int64, numbered 0, 1, ... in order of first appearance.
    """
    parent = list(range(len(boxes)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if len(boxes) > 1:
        for i, j in torch.nonzero(torch.triu(box_iou(boxes, boxes) > theta, diagonal=1)).tolist():
            parent[find(j)] = find(i)
    roots = [find(i) for i in range(len(boxes))]
    first = {root: label for label, root in enumerate(dict.fromkeys(roots))}
    return torch.tensor([first[r] for r in roots], dtype=torch.int64)


def separation_loss(embeddings, groups, margin, temperature):
    """Eq. 6-8 for one image: mean over the ordered cross-group pairs Omega of w_ij * max(S_ij - gamma, 0),
    with S = E E^T and w the softmax of max(S - gamma, 0) / tau over Omega (detached: it weighs,
    it is not optimised).

    embeddings [M, D] L2-normalised, groups [M] int64 -> scalar (0 when Omega is empty).
    """
    cross = groups[:, None] != groups[None, :]
    if not cross.any():
        return embeddings.sum() * 0.0
    hinge = (embeddings @ embeddings.t() - margin).clamp(min=0)[cross]
    weights = torch.softmax(hinge.detach() / temperature, dim=0)
    return (weights * hinge).sum() / hinge.numel()


def batch_hard_triplet_loss(embeddings, groups, margin):
    """Table 3's replacement of L_intra on one image: for each proposal, its least similar same-group
    proposal against its most similar other-group one, max(S_hard_neg - S_hard_pos + margin, 0),
    averaged over proposals that have both. embeddings [M, D] L2-normalised, groups [M] -> scalar."""
    similarity = embeddings @ embeddings.t()
    same = groups[:, None] == groups[None, :]
    has_both = same.sum(dim=1).gt(1) & (~same).any(dim=1)
    if not has_both.any():
        return embeddings.sum() * 0.0
    hardest_positive = similarity.masked_fill(~same | torch.eye(len(groups), dtype=torch.bool), 2.0).min(dim=1).values
    hardest_negative = similarity.masked_fill(same, -2.0).max(dim=1).values
    return (hardest_negative - hardest_positive + margin).clamp(min=0)[has_both].mean()


def cross_domain_contrastive_loss(embeddings, proxies, targets, temperature):
    """Eq. 4: -log softmax(f . c / tau) at the proxy of each embedding's identity, the softmax running
    over every proxy (source identities, target clusters, and any extra negative rows).

    embeddings [N, D], proxies [C, D] (both L2-normalised), targets [N] int64 in [0, C) or -1
    (ignored) -> scalar (0 when no target is valid).
    """
    valid = targets >= 0
    if not valid.any():
        return embeddings.sum() * 0.0
    logits = embeddings[valid] @ proxies.t() / temperature
    return F.cross_entropy(logits, targets[valid])


class IntraImageLoss(nn.Module):
    """L_intra of one batch: per image, its foreground proposals grouped by IoU (eq. 5) and the
    chosen loss (separation, eq. 7; or the batch-hard triplet) averaged over the images with at
    least two groups. forward(list of boxes [M_i, 4], list of embeddings [M_i, D], domain) -> scalar."""

    @configurable
    def __init__(self, *, kind="separation", group_iou=0.3, margins, temperature, weight=1.0):
        super().__init__()
        if not 0.0 <= group_iou <= 1.0 or not all(0.0 <= m <= 1.0 for m in margins.values()):
            raise ValueError(f"L_intra group_iou={group_iou} and margins={margins} must lie in [0, 1].")
        self.kind = kind
        self.group_iou = group_iou
        self.margins = dict(margins)
        self.temperature = temperature
        self.weight = weight

    @classmethod
    def from_config(cls, cfg):
        check_laid_config(cfg)
        dscl = cfg.PS.LAID.DSCL
        return {
            "kind": dscl.INTRA_LOSS,
            "group_iou": dscl.GROUP_IOU,
            "margins": {"source": dscl.MARGIN_SOURCE, "target": dscl.MARGIN_TARGET},
            "temperature": dscl.INTRA_TEMPERATURE,
            "weight": dscl.INTRA_WEIGHT,
        }

    def image_loss(self, embeddings, groups, margin):
        if self.kind == "triplet":
            return batch_hard_triplet_loss(embeddings, groups, margin)
        return separation_loss(embeddings, groups, margin, self.temperature)

    def forward(self, boxes, embeddings, domain):
        """boxes / embeddings: one tensor per image; domain "source" or "target" picks gamma."""
        zero = sum(e.sum() for e in embeddings) * 0.0
        if self.kind == "none":
            return zero
        losses = []
        for image_boxes, image_embeddings in zip(boxes, embeddings):
            groups = union_find_groups(image_boxes, self.group_iou)
            if len(groups) and groups.max() > 0:
                losses.append(self.image_loss(image_embeddings, groups, self.margins[domain]))
        return self.weight * torch.stack(losses).mean() if losses else zero
