"""DifferentiableObjectnessRPN: the RPN whose training proposals keep the gradient of their objectness.

TSA (LAID eq. 10) aligns P, "the foreground/background probability distribution from RPN
classification scores", of the proposals the ROI heads sample with the re-id confidence Q, and its
gradient must reach the RPN (RPN <= ReID). Detectron2's RPN selects proposals under no_grad, so its
`objectness_logits` are detached. Here, in training, the boxes are still decoded without gradient (the
proposals stay fixed for the ROI heads, as in Detectron2), but the logits pass through
find_top_rpn_proposals with their graph: its per-level sort, top-k slice and NMS `keep` indexing only
select entries, so proposal k's `objectness_logits[k]` is the logit of the anchor it came from, with
gradient into the RPN head's objectness conv. The selected proposals are the same as PersonSearchRPN's.

A subclass in the LAID folder rather than a change to PersonSearchRPN: the baseline's proposals stay
detached (no loss there reads them, and no graph is kept), and only a LAID config that aligns with the
RPN names it (configs/Base-LAID.yaml; LAID.from_config checks it for PS.LAID.TSA.DETECTOR "rpn").
"""
import torch
from detectron2.modeling import PROPOSAL_GENERATOR_REGISTRY
from detectron2.modeling.proposal_generator.proposal_utils import find_top_rpn_proposals

from ps_plugin.modeling.baseline.rpn import PersonSearchRPN

__all__ = ["DifferentiableObjectnessRPN"]


@PROPOSAL_GENERATOR_REGISTRY.register()
class DifferentiableObjectnessRPN(PersonSearchRPN):
    """PersonSearchRPN (ignore regions included); training proposals' objectness_logits [K_i] carry
    the gradient of the anchors' logits (module docstring). Inference is PersonSearchRPN's."""

    def predict_proposals(self, anchors, pred_objectness_logits, pred_anchor_deltas, image_sizes):
        """RPN.predict_proposals, without no_grad on the logits in training: anchors (L Boxes),
        logits (L of [N, H_l W_l A]), deltas (L of [N, H_l W_l A, 4]) -> N Instances(proposal_boxes,
        objectness_logits)."""
        if not self.training:
            return super().predict_proposals(anchors, pred_objectness_logits, pred_anchor_deltas, image_sizes)
        with torch.no_grad():
            boxes = self._decode_proposals(anchors, pred_anchor_deltas)
        return find_top_rpn_proposals(
            boxes,
            pred_objectness_logits,
            image_sizes,
            self.nms_thresh,
            self.pre_nms_topk[True],
            self.post_nms_topk[True],
            self.min_box_size,
            True,
        )
