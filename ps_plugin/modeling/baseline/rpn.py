"""PersonSearchRPN: Detectron2's RPN whose anchor labelling honours ignore regions.

Training takes the images' ignore regions (modeling/common/ignore_regions.py) beside the ground
truth: an anchor the matcher calls negative that lies inside a region (IoA > PS.DATA.IGNORE_IOA_THRESH)
becomes -1 before the positives / negatives are sampled, so it is neither. Without regions every call
is Detectron2's RPN.
"""
import torch
from detectron2.config import configurable
from detectron2.modeling import PROPOSAL_GENERATOR_REGISTRY
from detectron2.modeling.proposal_generator import RPN
from detectron2.structures import Boxes, pairwise_iou

from ps_plugin.modeling.common.ignore_regions import ignore_unmatched

__all__ = ["PersonSearchRPN"]


@PROPOSAL_GENERATOR_REGISTRY.register()
class PersonSearchRPN(RPN):
    """RPN + ignore regions (module docstring). forward(images, features, gt_instances, ignore_boxes):
    ignore_boxes is None or a list of one Boxes [M_b, 4] per image (input image)."""

    @configurable
    def __init__(self, *, ignore_ioa_thresh, **kwargs):
        super().__init__(**kwargs)
        self.ignore_ioa_thresh = ignore_ioa_thresh
        self._ignore_boxes = None

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret["ignore_ioa_thresh"] = cfg.PS.DATA.IGNORE_IOA_THRESH
        return ret

    def forward(self, images, features, gt_instances=None, ignore_boxes=None):
        self._ignore_boxes = ignore_boxes  # read by label_and_sample_anchors within this call only
        try:
            return super().forward(images, features, gt_instances)
        finally:
            self._ignore_boxes = None

    @torch.no_grad()
    def label_and_sample_anchors(self, anchors, gt_instances):
        """RPN.label_and_sample_anchors with the ignore step between matching and sampling: (labels, one
        int [R] per image in {1, 0, -1}; matched gt boxes, one [R, 4] per image), R = all anchors."""
        if self._ignore_boxes is None:
            return super().label_and_sample_anchors(anchors, gt_instances)
        anchors = Boxes.cat(anchors)
        labels, matched_boxes = [], []
        for targets, regions in zip(gt_instances, self._ignore_boxes):
            gt_boxes = targets.gt_boxes
            matched_idxs, labels_i = self.anchor_matcher(pairwise_iou(gt_boxes, anchors))
            labels_i = labels_i.to(device=gt_boxes.device)
            if self.anchor_boundary_thresh >= 0:
                labels_i[~anchors.inside_box(targets.image_size, self.anchor_boundary_thresh)] = -1
            labels_i = ignore_unmatched(labels_i, anchors, regions, self.ignore_ioa_thresh)
            labels.append(self._subsample_labels(labels_i))
            matched_boxes.append(gt_boxes[matched_idxs].tensor if len(gt_boxes) else torch.zeros_like(anchors.tensor))
        return labels, matched_boxes
