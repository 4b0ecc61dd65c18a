"""Box Detector: box offsets from offset embeddings, and its losses (Sec. 3.1, 3.3)."""
import torch
import torch.distributed as dist
import torch.nn.functional as F
from detectron2.utils import comm
from fvcore.nn import giou_loss
from torch import nn


class BoxDetector(nn.Module):
    """The box reg head: a 4-layer MLP (Linear + ReLU, width d) and a Linear to 4 offsets.

    forward: x_o [N, d] -> deltas [N, 4] = (dx, dy, dw, dh) w.r.t. the input (anchor or box),
    decoded by Detectron2's Box2BoxTransform. The box cls head is the parameter-free Logits Layer
    on the same x_o (supplementary Sec. 8), so it lives in the meta-architecture.
    """

    def __init__(self, dim, num_layers=4):
        super().__init__()
        layers = []
        for _ in range(num_layers):
            layers += [nn.Linear(dim, dim), nn.ReLU(inplace=True)]
        self.mlp = nn.Sequential(*layers)
        self.deltas = nn.Linear(dim, 4)

    def forward(self, offsets):
        return self.deltas(self.mlp(offsets))


def box_regression_loss(pred_boxes, target_boxes):
    """L_reg: GIoU loss (Rezatofighi et al. 2019) of XYXY boxes [P, 4] vs [P, 4], mean over the P positives."""
    if pred_boxes.shape[0] == 0:
        return pred_boxes.sum() * 0.0
    return giou_loss(pred_boxes, target_boxes, reduction="sum", eps=1e-7) / pred_boxes.shape[0]


def box_class_loss(logits, labels, normalization="num_pos"):
    """L_cls: unweighted binary cross-entropy of class logits z_d [N] vs labels [N] in {0, 1}.

    normalization "num_pos": summed and divided by the positives of the whole (all-rank) batch
    (authors' code); "mean": averaged over this rank's N predicted boxes (paper's wording).
    """
    loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="sum")
    return loss / loss_normalizer(labels, normalization)


def loss_normalizer(labels, normalization):
    """Divisor of a summed loss over boxes with `labels` [N] (1 = positive).

    "mean": max(N, 1) on this rank. "num_pos": max(P, 1) / R, where P is the number of positives
    summed over the R ranks, so that DDP's average of the R per-rank losses is the global sum
    divided by the global positives, the loss of one process on the whole batch (authors' code
    divides by the positives of the batch). Every rank must call it at every step (all-reduce).
    """
    if normalization == "mean":
        return max(labels.shape[0], 1)
    if normalization == "num_pos":
        return positives_across_ranks(labels).clamp(min=1.0) / comm.get_world_size()
    raise ValueError(f"PS.SPNET.TRAIN loss normalization {normalization!r}: use 'num_pos' or 'mean'")


def positives_across_ranks(labels):
    """Number of labels == 1 summed over every rank of the default process group (float32 scalar)."""
    count = (labels == 1).sum().to(torch.float32)
    if comm.get_world_size() > 1:
        dist.all_reduce(count)
    return count
