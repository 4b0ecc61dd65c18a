"""ROI heads = Detectron2's box heads + a re-id branch on the same ROI features.

Both heads expose `embed_boxes(features, boxes) -> (embeddings [N, D], NAE scores [N] or None)`
for boxes in input-image coordinates, which the meta-architecture uses for detections, query
boxes and ground-truth boxes alike. Ground-truth `gt_pids` reach the proposals through
Detectron2's `label_and_sample_proposals` (it copies every `gt_*` field of the matched box).
"""
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import ROI_HEADS_REGISTRY, StandardROIHeads
from detectron2.modeling.roi_heads import Res5ROIHeads, build_box_head

from ps_plugin.modeling.common import ReIDEmbeddingHead

from .reid_branch import ReIDBranch


@ROI_HEADS_REGISTRY.register()
class PersonSearchRes5ROIHeads(Res5ROIHeads):
    """C4 heads (OIM baseline): res5 on pooled ROIs feeds both the box predictor and re-id."""

    @configurable
    def __init__(self, *, reid_branch, **kwargs):
        super().__init__(**kwargs)
        self.reid_branch = reid_branch

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret["reid_branch"] = cls.build_reid_branch(cfg, ret["res5"][-1].out_channels)
        return ret

    @classmethod
    def build_reid_branch(cls, cfg, in_channels):
        """The re-id branch on ROI features of `in_channels` (OIM's; a method with another
        identity loss overrides it)."""
        return ReIDBranch(cfg, in_channels)

    def roi_features(self, features, boxes):
        """features: backbone maps {name: [B, C, H, W]}; boxes: list of B Boxes (input image, N_b each) ->
        res5 applied to their RoIAlign crops [sum N_b, C5, P/2, P/2] (P = POOLER_RESOLUTION), the maps the
        box predictor (averaged over space) and the re-id branch both read."""
        return self._shared_roi_transform([features[f] for f in self.in_features], boxes)

    def box_predictions_and_reid_features(self, features, boxes):
        """list[Boxes] per image -> (box predictor outputs, re-id branch input [sum N, C, h, w])."""
        box_features = self.roi_features(features, boxes)
        return self.box_predictor(box_features.mean(dim=[2, 3])), box_features

    def forward(self, images, features, proposals, targets=None):
        if not self.training:
            return super().forward(images, features, proposals, targets)
        proposals = self.label_and_sample_proposals(proposals, targets)
        predictions, reid_features = self.box_predictions_and_reid_features(features, [p.proposal_boxes for p in proposals])
        losses = self.box_predictor.losses(predictions, proposals)
        losses.update(self.reid_branch.losses(reid_features, proposals))
        return [], losses

    def embed_boxes(self, features, boxes):
        """features: backbone maps; boxes: list[Boxes] per image -> ([sum N, D], [sum N] or None)."""
        return self.reid_branch(self.roi_features(features, boxes))


@ROI_HEADS_REGISTRY.register()
class PersonSearchStandardROIHeads(StandardROIHeads):
    """FPN (or single-map) heads. Re-id reads the pooled ROI features through its own copy of the
    box head (PS.REID.SEPARATE_BOX_HEAD, default) or the box head's output vector (shared)."""

    @configurable
    def __init__(self, *, reid_branch, reid_box_head=None, **kwargs):
        super().__init__(**kwargs)
        self.reid_branch = reid_branch
        self.reid_box_head = reid_box_head

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        if cfg.PS.REID.SEPARATE_BOX_HEAD:
            pooled = ShapeSpec(
                channels=input_shape[ret["box_in_features"][0]].channels,
                height=cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION,
                width=cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION,
            )
            ret["reid_box_head"] = build_box_head(cfg, pooled)
        ret["reid_branch"] = cls.build_reid_branch(cfg, ret["box_head"].output_shape.channels)
        return ret

    @classmethod
    def build_reid_branch(cls, cfg, in_channels):
        """The re-id branch on box-head vectors of `in_channels` (OIM's; a method with another
        identity loss overrides it)."""
        return ReIDBranch(cfg, in_channels)

    def pooled_features(self, features, boxes):
        """features: backbone maps {name: [B, C, H, W]}; boxes: list of B Boxes (input image, N_b each) ->
        their RoIAlign maps [sum N_b, C, P, P] (P = POOLER_RESOLUTION), the box head's input."""
        return self.box_pooler([features[f] for f in self.box_in_features], boxes)

    def reid_inputs(self, pooled, box_features):
        """pooled: RoIAlign maps [R, C, P, P]; box_features: the box head's output [R, F] (None allowed with
        a separate re-id box head) -> the re-id branch's input [R, F]: the separate re-id box head's output
        on `pooled` (PS.REID.SEPARATE_BOX_HEAD), else `box_features`."""
        return box_features if self.reid_box_head is None else self.reid_box_head(pooled)

    def box_predictions_and_reid_features(self, features, boxes):
        """list[Boxes] per image -> (box predictor outputs, re-id branch input [sum N, C])."""
        pooled = self.pooled_features(features, boxes)
        box_features = self.box_head(pooled)
        return self.box_predictor(box_features), self.reid_inputs(pooled, box_features)

    def _forward_box(self, features, proposals):
        if not self.training:
            return super()._forward_box(features, proposals)
        predictions, reid_features = self.box_predictions_and_reid_features(features, [p.proposal_boxes for p in proposals])
        losses = self.box_predictor.losses(predictions, proposals)
        losses.update(self.reid_branch.losses(reid_features, proposals))
        return losses

    def embed_boxes(self, features, boxes):
        """features: backbone maps; boxes: list[Boxes] per image -> ([sum N, D], [sum N] or None)."""
        pooled = self.pooled_features(features, boxes)
        box_features = self.box_head(pooled) if self.reid_box_head is None else None
        return self.reid_branch(self.reid_inputs(pooled, box_features))


def _memory_reid_branch(cfg, in_channels):
    """ReIDBranch = the embedding head without an OIM table (its `losses` is never called)."""
    return ReIDBranch(head=ReIDEmbeddingHead(cfg, in_channels), oim=None, num_classes=cfg.MODEL.ROI_HEADS.NUM_CLASSES)


@ROI_HEADS_REGISTRY.register()
class MemoryReIDRes5ROIHeads(PersonSearchRes5ROIHeads):
    """C4 heads whose re-id branch carries no OIM table: for methods that learn identities from their
    own memories (OLA, LAID), so nothing here is sized by (or reads) labelled person ids."""

    @classmethod
    def build_reid_branch(cls, cfg, in_channels):
        return _memory_reid_branch(cfg, in_channels)


@ROI_HEADS_REGISTRY.register()
class MemoryReIDStandardROIHeads(PersonSearchStandardROIHeads):
    """FPN / single-map heads whose re-id branch carries no OIM table (as MemoryReIDRes5ROIHeads)."""

    @classmethod
    def build_reid_branch(cls, cfg, in_channels):
        return _memory_reid_branch(cfg, in_channels)
