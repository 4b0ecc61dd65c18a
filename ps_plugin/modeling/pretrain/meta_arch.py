"""HybridPretrain: hybrid pre-training for person search (Tian et al., AAAI'24, Eq. 1-7).

The person-search model is the baseline PersonSearchRCNN (RPN + box head + OIM re-id branch, with
PersonSearchStandardROIHeads); pre-training adds, on training inputs only:
- L_ps (Eq. 2-4): the baseline's RPN, box and OIM losses on every view of every image (detection
  boxes and unlabelled crops each carry their own identity, datasets/crops.py).
- L_con (Eq. 5-6): SimSiam between the two views (PS.INPUT.NUM_VIEWS 2) of images whose records
  have "instance_ids" (detection data and unlabelled crops), on the re-id embeddings h of the
  ground-truth boxes seen in both views (paired by gt_box_ids), with a prediction MLP z = MLP(h).
- L_adv (Eq. 7): the detection IAM (image level: the backbone map the ROI heads read; instance
  level: box-head features of the ground-truth boxes) and the re-id IAM (image level: their
  ROI maps; instance level: their re-id embeddings), each a DomainAlignmentModule over the
  datasets of DATASETS.TRAIN (the record's "dataset_id", PS.DATA.TRAIN_RATIOS).
- Inter-task alignment (Table 5, PS.PRETRAIN.INTER_TASK_AM, off as in the paper): a third
  DomainAlignmentModule over 2 classes, the task whose data each image is (detection: a scene
  record; re-id: a unified crop, whose record carries "crop_box"), on the features both tasks
  share: the backbone map (image level) and each ground-truth box's ROI maps averaged over space
  (instance level). Its three terms join L_adv.
L = L_ps + ETA * L_con + LAMBDA * L_adv. Inference is the baseline's; the export
(tools/convert_pretrained.py --source ps-checkpoint) drops the IAMs and the predictor.
"""
import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.utils.events import get_event_storage

from ps_plugin.modeling.baseline import PersonSearchRCNN, PersonSearchRes5ROIHeads, PersonSearchStandardROIHeads
from ps_plugin.modeling.common.domain_adversarial import DomainAlignmentModule
from ps_plugin.data.datasets.crops import CROP_BOX
from ps_plugin.modeling.common.views import flatten_views, record_views

from .simsiam import PredictionMLP, embedding_spread, paired_box_rows, simsiam_loss

__all__ = ["HybridPretrain", "gt_box_features", "task_ids"]

DATASET_ID = "dataset_id"
INSTANCE_IDS = "instance_ids"
DETECTION_TASK, REID_TASK = 0, 1


def task_ids(views, device):
    """int64 [B]: REID_TASK for a view of a unified crop (its record has "crop_box"), else DETECTION_TASK."""
    return torch.tensor([REID_TASK if CROP_BOX in v else DETECTION_TASK for v in views], dtype=torch.int64, device=device)


def gt_box_features(roi_heads, features, boxes):
    """The IAM and SimSiam inputs of boxes (list of B Boxes, input image) through the baseline's heads:
    (ROI maps [R, C, P, P], box-head features [R, F], re-id embeddings [R, D] L2-normalised).

    StandardROIHeads: the RoIAlign maps and the box head's output. C4 heads (Res5ROIHeads): res5's
    maps of the RoIAlign output, which both the box predictor (averaged) and re-id read."""
    if isinstance(roi_heads, PersonSearchRes5ROIHeads):
        maps = roi_heads.roi_features(features, boxes)
        embeddings, _ = roi_heads.reid_branch(maps)
        return maps, maps.mean(dim=(2, 3)), embeddings
    pooled = roi_heads.pooled_features(features, boxes)
    box_features = roi_heads.box_head(pooled)
    embeddings, _ = roi_heads.reid_branch(roi_heads.reid_inputs(pooled, box_features))
    return pooled, box_features, embeddings


def roi_channels(roi_heads, backbone):
    """(channels of the ROI maps, size of the box-head features) that gt_box_features returns."""
    if isinstance(roi_heads, PersonSearchRes5ROIHeads):
        channels = roi_heads.res5[-1].out_channels
        return channels, channels
    return backbone.output_shape()[roi_heads.box_in_features[0]].channels, roi_heads.box_head.output_shape.channels


def _log_scalar(name, value):
    try:
        get_event_storage().put_scalar(name, value, smoothing_hint=True)
    except AssertionError:  # outside a trainer
        pass


@META_ARCH_REGISTRY.register()
class HybridPretrain(PersonSearchRCNN):
    """PersonSearchRCNN + SimSiam (L_con) + intra-task alignment modules (L_adv); module docstring."""

    @configurable
    def __init__(self, *, predictor, det_iam, reid_iam, eta, lam, inter_task_am=None, **kwargs):
        """predictor: PredictionMLP; det_iam / reid_iam / inter_task_am: DomainAlignmentModule or None;
        eta, lam: Eq. 1."""
        super().__init__(**kwargs)
        self.predictor = predictor
        self.det_iam = det_iam
        self.reid_iam = reid_iam
        self.inter_task_am = inter_task_am
        self.eta = eta
        self.lam = lam

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        node = cfg.PS.PRETRAIN
        roi_heads = ret["roi_heads"]
        if not isinstance(roi_heads, (PersonSearchStandardROIHeads, PersonSearchRes5ROIHeads)):
            raise ValueError(
                "HybridPretrain needs the baseline's heads: MODEL.ROI_HEADS.NAME 'PersonSearchStandardROIHeads' or "
                f"'PersonSearchRes5ROIHeads', got {type(roi_heads).__name__}."
            )
        image_channels = ret["backbone"].output_shape()[cfg.MODEL.ROI_HEADS.IN_FEATURES[0]].channels
        roi_map_channels, box_dim = roi_channels(roi_heads, ret["backbone"])
        hidden = node.IAM_HIDDEN_DIM
        num_domains = len(cfg.DATASETS.TRAIN)
        if (node.DET_IAM or node.REID_IAM) and num_domains < 2:
            raise ValueError(
                f"The IAMs align datasets: DATASETS.TRAIN has {num_domains}; list at least 2 or set "
                "PS.PRETRAIN.DET_IAM and PS.PRETRAIN.REID_IAM to False."
            )

        def iam(channels, instance_dim, classes=num_domains):
            return DomainAlignmentModule(channels, instance_dim, classes, node.GRL_WEIGHT, (hidden,), (hidden, hidden))

        dim = cfg.PS.REID.EMBED_DIM
        ret.update(
            predictor=PredictionMLP(dim, node.PREDICTOR_HIDDEN_DIM),
            det_iam=iam(image_channels, box_dim) if node.DET_IAM else None,
            reid_iam=iam(roi_map_channels, dim) if node.REID_IAM else None,
            inter_task_am=iam(image_channels, roi_map_channels, classes=2) if node.INTER_TASK_AM else None,
            eta=node.ETA,
            lam=node.LAMBDA,
        )
        return ret

    def losses(self, batched_inputs):
        """Training inputs (one view each, or {VIEWS: [2 views]}) -> L_ps terms (the baseline's), "loss_con",
        and "loss_adv_{det,reid,inter}_{img,ins,cst}" for the enabled alignment modules, each already weighted."""
        views = flatten_views(batched_inputs)
        images = self.preprocess_image(views)
        features = self.backbone(images.tensor)
        targets = [v["instances"].to(self.device) for v in views]
        proposals, losses = self.propose(images, features, targets, views)
        _, detector_losses = self.roi_heads(images, features, proposals, targets)
        losses.update(detector_losses)
        pooled, box_features, embeddings = gt_box_features(self.roi_heads, features, [t.gt_boxes for t in targets])
        losses["loss_con"] = self.eta * self._contrastive(batched_inputs, targets, embeddings)
        if any(m is not None for m in (self.det_iam, self.reid_iam, self.inter_task_am)):
            losses.update(self._adversarial(views, features, targets, pooled, box_features, embeddings))
        return losses

    def _contrastive(self, batched_inputs, targets, embeddings):
        """L_con over the two-view inputs with "instance_ids"; logs the spread of the embeddings used."""
        starts = torch.tensor([0] + [len(t) for t in targets], device=self.device).cumsum(0)
        first, second, view = [], [], 0
        for record in batched_inputs:
            count = len(record_views(record))
            if count == 2 and record.get(INSTANCE_IDS, False):
                rows_1, rows_2 = paired_box_rows(targets[view].gt_box_ids, targets[view + 1].gt_box_ids)
                first.append(rows_1 + starts[view])
                second.append(rows_2 + starts[view + 1])
            view += count
        empty = torch.zeros(0, dtype=torch.int64, device=self.device)
        first, second = torch.cat(first + [empty]), torch.cat(second + [empty])
        _log_scalar("pretrain/embedding_spread", embedding_spread(embeddings[first]))
        return simsiam_loss(embeddings[first], embeddings[second], self.predictor)

    def _adversarial(self, views, features, targets, pooled, box_features, embeddings):
        """LAMBDA x the terms of Eq. 7 for each enabled IAM, and those of the inter-task module."""
        image_index = torch.cat(
            [torch.full((len(t),), i, dtype=torch.int64, device=self.device) for i, t in enumerate(targets)]
        )
        image_map = features[self.roi_heads.in_features[0]]
        terms = {}
        if self.det_iam is not None or self.reid_iam is not None:
            domains = self._dataset_ids(views)
        if self.det_iam is not None:
            terms["det"] = self.det_iam(image_map, domains, box_features, image_index)
        if self.reid_iam is not None:
            rois = torch.arange(len(image_index), device=self.device)
            terms["reid"] = self.reid_iam(pooled, domains[image_index], embeddings, rois)
        if self.inter_task_am is not None:
            tasks = task_ids(views, self.device)
            terms["inter"] = self.inter_task_am(image_map, tasks, pooled.mean(dim=(2, 3)), image_index)
        return {f"loss_adv_{iam}_{k}": self.lam * v for iam, parts in terms.items() for k, v in parts.items()}

    def _dataset_ids(self, views):
        """int64 [B]: each view's "dataset_id"; ValueError naming the fix when one is missing."""
        missing = [v.get("image_id") for v in views if DATASET_ID not in v]
        if missing:
            raise ValueError(
                f"HybridPretrain's IAMs need each record's '{DATASET_ID}': set PS.DATA.TRAIN_RATIOS (one ratio per "
                f"DATASETS.TRAIN entry) so the training stream tags them; missing on {missing[:3]}."
            )
        return torch.tensor([v[DATASET_ID] for v in views], dtype=torch.int64, device=self.device)
