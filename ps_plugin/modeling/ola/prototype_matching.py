"""OLA's prototype matching (eq. 3-5): re-id labels of the sampled proposals by optimal transport
between the image's ground-truth instances (and a background supplier) and its proposals."""
from typing import List, Optional

import torch
from torchvision.ops import box_iou

from ps_plugin.modeling.common.assignment import decode_plan, sinkhorn

__all__ = ["PrototypeMatcher", "dynamic_k"]


def dynamic_k(iou, top_q):
    """Units of positive labels per GT (OTA): k_i = max(1, int(sum of the top-q IoUs of GT i)).
    iou [M, N] -> int64 [M]."""
    if iou.shape[1] == 0:
        return torch.ones(iou.shape[0], dtype=torch.long, device=iou.device)
    top = iou.topk(min(top_q, iou.shape[1]), dim=1).values
    return top.sum(dim=1).long().clamp(min=1)


class PrototypeMatcher:
    """Per image, proposals j = 1..n, ground truths i = 1..m with crop embeddings G_i:

    "paper" mode (eq. 3-5): cost_ij = (1 - IoU(P_j^box, G_i^box)) + alpha (1 - cos(P_j^id, G_i^id)),
    background row cost_j = sum_i IoU(P_j^box, G_i^box) + alpha (1 - cos(P_j^id, G_bg^id)); GT i
    supplies k_i units (dynamic or fixed k), the background n - sum k (when sum k > n the GT supplies
    are scaled to n and the background gets none); every proposal demands 1. Log-domain Sinkhorn
    over all images at once; each proposal goes to its largest-mass supplier.
    "code" mode (authors' release): only the Max-IoU positives, cost (1 - cos) + (1 - IoU(RoI, GT)),
    uniform supplies n_pos / m, no background row; negatives stay background.

    Returns, per image, int64 [n]: the assigned GT index, or -1 for background.
    """

    def __init__(self, mode="paper", alpha=1.0, use_dynamic_k=True, k=3, top_q=10, epsilon=0.1, iterations=50):
        if mode not in ("paper", "code"):
            raise ValueError(f"PS.OLA.PM.MODE must be 'paper' or 'code', got {mode!r}")
        self.mode = mode
        self.alpha = alpha
        self.use_dynamic_k = use_dynamic_k
        self.k = k
        self.top_q = top_q
        self.epsilon = epsilon
        self.iterations = iterations

    @torch.no_grad()
    def __call__(
        self,
        pred_boxes: List[torch.Tensor],
        proposal_boxes: List[torch.Tensor],
        proposal_embeddings: List[torch.Tensor],
        foreground: List[torch.Tensor],
        gt_boxes: List[torch.Tensor],
        crop_embeddings: List[torch.Tensor],
        background_embeddings: Optional[List[torch.Tensor]],
        image_names: List[str],
    ) -> List[torch.Tensor]:
        """pred_boxes / proposal_boxes [n, 4] XYXY, proposal_embeddings [n, D] and foreground [n]
        (Max-IoU) per image; gt_boxes [m, 4], crop_embeddings [m, D], background_embeddings [D]
        ("paper" mode), image_names (for errors) per image."""
        problems = []
        for index in range(len(gt_boxes)):
            if self.mode == "paper":
                problems.append(self._paper_problem(pred_boxes[index], proposal_embeddings[index], gt_boxes[index],
                                                    crop_embeddings[index], background_embeddings[index]))
            else:
                problems.append(self._code_problem(proposal_boxes[index], proposal_embeddings[index], foreground[index],
                                                   gt_boxes[index], crop_embeddings[index]))
        for (cost, _, _, _), name in zip(problems, image_names):
            if not torch.isfinite(cost).all():
                raise ValueError(f"OLA prototype matching: a NaN / inf in the cost of image {name}")
        cost, supply, demand = _pad(problems)
        suppliers = decode_plan(sinkhorn(cost, supply, demand, self.epsilon, self.iterations))
        return [to_gt(suppliers[b, : len(columns)]) for b, (_, _, columns, to_gt) in enumerate(problems)]

    def _paper_problem(self, pred_boxes, embeddings, gt_boxes, crops, background):
        n, m = len(pred_boxes), len(gt_boxes)
        iou = box_iou(gt_boxes, pred_boxes)  # [m, n]
        foreground_cost = (1 - iou) + self.alpha * (1 - crops @ embeddings.t())
        background_cost = iou.sum(dim=0) + self.alpha * (1 - embeddings @ background)
        cost = torch.cat([background_cost[None], foreground_cost])  # row 0: background
        units = dynamic_k(iou, self.top_q) if self.use_dynamic_k else torch.full((m,), self.k, device=iou.device)
        units = units.to(cost.dtype)
        if units.sum() > n:
            units = units * n / units.sum()
        supply = torch.cat([(n - units.sum()).reshape(1), units])
        columns = torch.arange(n, device=cost.device)
        return cost, supply, columns, lambda supplier: supplier - 1

    def _code_problem(self, proposal_boxes, embeddings, foreground, gt_boxes, crops):
        n, m = len(proposal_boxes), len(gt_boxes)
        positive = foreground.nonzero()[:, 0] if m else foreground.new_zeros(0, dtype=torch.long)
        cost = (1 - crops @ embeddings[positive].t()) + (1 - box_iou(gt_boxes, proposal_boxes[positive]))
        supply = torch.full((m,), len(positive) / max(m, 1), dtype=cost.dtype, device=cost.device)

        def to_gt(supplier):
            labels = torch.full((n,), -1, dtype=torch.long, device=supplier.device)
            labels[positive] = supplier
            return labels

        return cost, supply, positive, to_gt


def _pad(problems):
    """[(cost [M_b, N_b], supply [M_b], columns [N_b], _)] -> cost [B, M, N], supply [B, M],
    demand [B, N] (1 on real columns, 0 on padding; supply 0 on padded rows)."""
    rows = max([len(p[1]) for p in problems] + [1])
    cols = max([len(p[2]) for p in problems] + [1])
    reference = problems[0][0]
    cost = reference.new_zeros(len(problems), rows, cols)
    supply = reference.new_zeros(len(problems), rows)
    demand = reference.new_zeros(len(problems), cols)
    for b, (c, s, columns, _) in enumerate(problems):
        cost[b, : c.shape[0], : c.shape[1]] = c
        supply[b, : len(s)] = s
        demand[b, : len(columns)] = 1
    return cost, supply, demand
