"""Set-prediction loss of PSDiff (eq. 13-14), with deep supervision over the CDL stages."""
import torch
import torch.nn.functional as F
from fvcore.nn import giou_loss, sigmoid_focal_loss

from ps_plugin.utils.distributed import mean_over_ranks

from .matcher import DynamicKMatcher, PSDiffMatcher

_REID_LOSSES = ("l2", "normalized_l2")


class PSDiffCriterion:
    """L = λ_cls·L_focal + λ_L1·L_L1 + λ_giou·L_giou + λ_reid·L_reid, on Hungarian-matched pairs σ.

    L_reid = Σ_i ‖Norm(e0^i) − ê0^σ(i)‖₂ (eq. 14). Every term is summed over the matched pairs of
    the batch (one per GT with the Hungarian matcher, several with dynamic-k) and divided by the
    number of GT boxes per rank, averaged over every rank (all-reduced; ≥ 1), as DETR / DiffusionDet
    normalise: DDP's gradient average then equals one process's loss over the global batch.
    Unmatched predictions are negatives of the focal loss. L1 is on XYXY divided by the image size.
    With reid_loss "normalized_l2", ê0 is L2-normalised before matching and L_reid.
    """

    def __init__(self, matcher: PSDiffMatcher, weights, focal_alpha=0.25, focal_gamma=2.0, reid_loss="l2"):
        """weights: {"cls": λ_cls, "l1": λ_L1, "giou": λ_giou, "reid": λ_reid}; reid_loss: "l2" or "normalized_l2"."""
        if reid_loss not in _REID_LOSSES:
            raise ValueError(f"cfg.PS.PSDIFF.REID_LOSS={reid_loss!r}: use one of {_REID_LOSSES}")
        self.matcher = matcher
        self.weights = dict(weights)
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.normalize_embeddings = reid_loss == "normalized_l2"

    @classmethod
    def from_config(cls, cfg):
        p = cfg.PS.PSDIFF
        args = (p.CLASS_WEIGHT, p.L1_WEIGHT, p.GIOU_WEIGHT, p.REID_WEIGHT if p.MATCH_WITH_REID else 0.0, p.FOCAL_ALPHA, p.FOCAL_GAMMA)
        if p.MATCHER == "hungarian":
            matcher = PSDiffMatcher(*args)
        elif p.MATCHER == "dynamic_k":
            matcher = DynamicKMatcher(*args, candidates=p.DYNAMIC_K_CANDIDATES, center_radius=p.CENTER_RADIUS)
        else:
            raise ValueError(f"cfg.PS.PSDIFF.MATCHER={p.MATCHER!r}: use 'hungarian' (paper) or 'dynamic_k' (DiffusionDet code)")
        weights = {"cls": p.CLASS_WEIGHT, "l1": p.L1_WEIGHT, "giou": p.GIOU_WEIGHT, "reid": p.REID_WEIGHT}
        return cls(matcher, weights, p.FOCAL_ALPHA, p.FOCAL_GAMMA, p.REID_LOSS)

    def stage_losses(self, outputs, targets):
        """Unweighted {"cls", "l1", "giou", "reid"} of one stage; outputs are [B, N, k], targets per image."""
        if self.normalize_embeddings:
            outputs = dict(outputs, pred_embeddings=F.normalize(outputs["pred_embeddings"], dim=-1))
        matches = self.matcher(outputs, targets)
        num_gt = mean_over_ranks(sum(len(t["boxes"]) for t in targets), outputs["pred_logits"].device).clamp(min=1)
        cls_targets = torch.zeros_like(outputs["pred_logits"])
        pred_boxes, gt_boxes, whwh, pred_emb, gt_emb = [], [], [], [], []
        for i, ((pred_idx, gt_idx), target) in enumerate(zip(matches, targets)):
            cls_targets[i, pred_idx, 0] = 1.0
            pred_boxes.append(outputs["pred_boxes"][i, pred_idx])
            gt_boxes.append(target["boxes"][gt_idx])
            whwh.append(target["whwh"].expand(len(gt_idx), 4))
            pred_emb.append(outputs["pred_embeddings"][i, pred_idx])
            gt_emb.append(target["embeddings"][gt_idx])
        pred_boxes, gt_boxes, whwh = torch.cat(pred_boxes), torch.cat(gt_boxes), torch.cat(whwh)
        focal = sigmoid_focal_loss(
            outputs["pred_logits"], cls_targets, alpha=self.focal_alpha, gamma=self.focal_gamma, reduction="sum"
        )
        return {
            "cls": focal / num_gt,
            "l1": (pred_boxes / whwh - gt_boxes / whwh).abs().sum() / num_gt,
            "giou": giou_loss(pred_boxes, gt_boxes, reduction="sum") / num_gt,
            "reid": (torch.cat(pred_emb) - torch.cat(gt_emb)).norm(dim=-1).sum() / num_gt,
        }

    def __call__(self, stage_outputs, targets):
        """
        Args:
            stage_outputs: list (per CDL stage) of dicts "pred_logits" [B, N, 1], "pred_boxes" [B, N, 4]
                (XYXY), "pred_embeddings" [B, N, D].
            targets: list (per image) of dicts "boxes" [M, 4] XYXY, "embeddings" Norm(e0) [M, D], "whwh" [4].
        Returns:
            weighted losses "loss_cls", "loss_l1", "loss_giou", "loss_reid" (last stage) and the same
            with suffix "_stage{k}" for the earlier stages.
        """
        losses = {}
        last = len(stage_outputs) - 1
        for k, outputs in enumerate(stage_outputs):
            suffix = "" if k == last else f"_stage{k}"
            for name, value in self.stage_losses(outputs, targets).items():
                losses[f"loss_{name}{suffix}"] = self.weights[name] * value
        return losses
