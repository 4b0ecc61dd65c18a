"""The baseline's ROI heads with a re-id branch that carries no OIM table: OLA learns identities from
its pseudo-label memories, so nothing here is sized by (or reads) labeled person ids."""
from detectron2.modeling import ROI_HEADS_REGISTRY

from ps_plugin.modeling.baseline import PersonSearchRes5ROIHeads, PersonSearchStandardROIHeads, ReIDBranch
from ps_plugin.modeling.common import ReIDEmbeddingHead

__all__ = ["OLARes5ROIHeads", "OLAStandardROIHeads"]


def _embedding_only_branch(cfg, in_channels):
    """ReIDBranch = embedding head without an identity loss (its `losses` is never called by OLA)."""
    return ReIDBranch(head=ReIDEmbeddingHead(cfg, in_channels), oim=None, num_classes=cfg.MODEL.ROI_HEADS.NUM_CLASSES)


@ROI_HEADS_REGISTRY.register()
class OLARes5ROIHeads(PersonSearchRes5ROIHeads):
    """C4 heads (the paper's ResNet-50 Faster R-CNN) for OLA."""

    @classmethod
    def build_reid_branch(cls, cfg, in_channels):
        return _embedding_only_branch(cfg, in_channels)


@ROI_HEADS_REGISTRY.register()
class OLAStandardROIHeads(PersonSearchStandardROIHeads):
    """FPN / single-map heads (the quick MobileNetV2 configs) for OLA."""

    @classmethod
    def build_reid_branch(cls, cfg, in_channels):
        return _embedding_only_branch(cfg, in_channels)
