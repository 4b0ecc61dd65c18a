"""Matching of predictions to ground truths with the eq. 13 cost: one-to-one (scipy Hungarian / JV,
the paper) or DiffusionDet's dynamic-k (SimOTA) assignment (its released code's variant)."""
import torch
from torchvision.ops import box_iou, generalized_box_iou

from ps_plugin.modeling.common.assignment import hungarian_match


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
            matches.append(self.assign(cost, outputs["pred_boxes"][i], target["boxes"]))
        return matches

    def assign(self, cost, boxes, gt_boxes):
        """One-to-one Hungarian assignment of cost [N, M] -> (pred_indices, target_indices)."""
        return hungarian_match(cost)


def center_prior(boxes, gt_boxes, radius=2.5):
    """DiffusionDet's location prior of predictions against GTs.

    A prediction's centre is "in box" inside the GT box, "in center" inside the GT-centred square
    region radius × (w, h) wide on each side.

    Returns:
        in_box_and_center: bool [N, M], per (prediction, GT) pair;
        in_any_box_or_center: bool [N], per prediction: in the box or the centre region of at least
            one GT (DiffusionDet's foreground mask).
    """
    centers = (boxes[:, None, :2] + boxes[:, None, 2:]) / 2
    in_box = ((centers > gt_boxes[None, :, :2]) & (centers < gt_boxes[None, :, 2:])).all(dim=-1)
    gt_centers = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    half = radius * (gt_boxes[:, 2:] - gt_boxes[:, :2])
    in_center = ((centers > (gt_centers - half)[None]) & (centers < (gt_centers + half)[None])).all(dim=-1)
    return in_box & in_center, in_box.any(dim=1) | in_center.any(dim=1)


class DynamicKMatcher(PSDiffMatcher):
    """DiffusionDet's released matcher (SimOTA): the eq. 13 cost plus 100 for a (prediction, GT) pair
    outside that GT's box-and-centre prior, and 10,000 on every GT for a prediction outside the box
    and the centre region of all GTs (a per-prediction penalty, as DiffusionDet); each GT takes its k = max(1, ⌊Σ top-q IoUs⌋) cheapest predictions
    (q = `candidates`); a prediction claimed by several GTs keeps the cheapest. Several predictions
    may match one GT; every GT gets at least one (given at least as many predictions as GTs).
    """

    def __init__(self, *args, candidates=5, center_radius=2.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.candidates, self.center_radius = candidates, center_radius

    @torch.no_grad()
    def assign(self, cost, boxes, gt_boxes):
        """cost [N, M], boxes [N, 4], gt_boxes [M, 4] (XYXY) -> (pred_indices, target_indices), one
        entry per matched prediction, sorted by prediction index."""
        both, foreground = center_prior(boxes, gt_boxes, self.center_radius)
        cost = cost + 100.0 * (~both) + 10000.0 * (~foreground)[:, None]
        iou = box_iou(boxes, gt_boxes)
        num_preds = cost.shape[0]
        top_iou = iou.topk(min(self.candidates, num_preds), dim=0).values
        ks = top_iou.sum(dim=0).int().clamp(min=1, max=num_preds)
        matching = torch.zeros_like(cost, dtype=torch.bool)
        for j, k in enumerate(ks.tolist()):
            matching[cost[:, j].topk(k, largest=False).indices, j] = True
        multiple = matching.sum(dim=1) > 1
        if multiple.any():
            cheapest = torch.where(matching[multiple], cost[multiple], torch.inf).argmin(dim=1)
            matching[multiple] = False
            matching[multiple.nonzero()[:, 0], cheapest] = True
        for j in (~matching.any(dim=0)).nonzero()[:, 0].tolist():
            free = cost[:, j].masked_fill(matching.any(dim=1), torch.inf)
            if torch.isfinite(free).any():  # fewer predictions than GTs leave the rest unmatched
                matching[free.argmin(), j] = True
        pred_idx, gt_idx = matching.nonzero(as_tuple=True)
        return pred_idx, gt_idx
