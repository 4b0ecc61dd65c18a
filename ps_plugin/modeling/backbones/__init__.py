"""Backbones registered in Detectron2's BACKBONE_REGISTRY (Detectron2's ResNet C4/FPN are built in)."""
from .timm_backbone import TimmBackbone, build_timm_backbone, load_timm_weights

__all__ = ["TimmBackbone", "build_timm_backbone", "load_timm_weights"]
