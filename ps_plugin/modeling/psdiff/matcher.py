"""One-to-one set matching of predictions to ground truths with the eq. 13 cost (scipy Hungarian / JV)."""
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import generalized_box_iou


def hungarian_match(cost):
    """Minimum-cost one-to-one assignment of a cost matrix [N, M] (N predictions, M targets).

    Returns (pred_indices, target_indices): int64 tensors of length min(N, M) on `cost`'s device,
    sorted by prediction index.
    """
    rows, cols = linear_sum_assignment(cost.detach().cpu().numpy())
    device = cost.device
    return torch.as_tensor(rows, dtype=torch.long, device=device), torch.as_tensor(cols, dtype=torch.long, device=device)


def focal_class_cost(logits, alpha=0.25, gamma=2.0):
    """Focal matching cost of the person class for every prediction: logits [N, 1] -> [N] (DETR/Sparse R-CNN)."""
    prob = logits[:, 0].sigmoid()
    positive = alpha * (1 - prob) ** gamma * -(prob + 1e-8).log()
    negative = (1 - alpha) * prob**gamma * -(1 - prob + 1e-8).log()
    return positive - negative


class PSDiffMatcher:
    """Eq. 13 as a matching cost: λ_cls·focal + λ_L1·L1 (normalised XYXY) − λ_giou·GIoU + λ_reid·‖e0 − ê0‖₂."""

    def __init__(self, class_weight=2.0, l1_weight=5.0, giou_weight=2.0, reid_weight=5.0, alpha=0.25, gamma=2.0):
        self.class_weight = class_weight
        self.l1_weight = l1_weight
        self.giou_weight = giou_weight
        self.reid_weight = reid_weight
        self.alpha, self.gamma = alpha, gamma

    @torch.no_grad()
    def cost_matrix(self, logits, boxes, embeddings, gt_boxes, gt_embeddings, whwh):
        """
        Args:
            logits [N, 1]; boxes [N, 4] absolute XYXY; embeddings ê0 [N, D];
            gt_boxes [M, 4] absolute XYXY; gt_embeddings Norm(e0) [M, D]; whwh [4] image size.
        Returns:
            cost [N, M].
        """
        cost = self.class_weight * focal_class_cost(logits, self.alpha, self.gamma)[:, None]
        cost = cost + self.l1_weight * torch.cdist(boxes / whwh, gt_boxes / whwh, p=1)
        cost = cost - self.giou_weight * generalized_box_iou(boxes, gt_boxes)
        if self.reid_weight:
            cost = cost + self.reid_weight * torch.cdist(embeddings, gt_embeddings, p=2)
        return cost

    def __call__(self, outputs, targets):
        """
        Args:
            outputs: dict of [B, N, k] tensors ("pred_logits", "pred_boxes", "pred_embeddings").
            targets: list (per image) of dicts "boxes" [M, 4] XYXY, "embeddings" [M, D], "whwh" [4].
        Returns:
            list of (pred_indices, target_indices) per image.
        """
        matches = []
        for i, target in enumerate(targets):
            if len(target["boxes"]) == 0:
                empty = torch.empty(0, dtype=torch.long, device=target["boxes"].device)
                matches.append((empty, empty))
                continue
            cost = self.cost_matrix(
                outputs["pred_logits"][i],
                outputs["pred_boxes"][i],
                outputs["pred_embeddings"][i],
                target["boxes"],
                target["embeddings"],
                target["whwh"],
            )
            matches.append(hungarian_match(cost))
        return matches
