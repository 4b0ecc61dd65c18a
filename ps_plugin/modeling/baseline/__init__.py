"""Baseline person search: Faster R-CNN + OIM re-id embedding head (Xiao et al. 2017)."""
from .meta_arch import PersonSearchRCNN
from .reid_branch import ReIDBranch, proposal_pids
from .rpn import PersonSearchRPN
from .roi_heads import (
    MemoryReIDRes5ROIHeads,
    MemoryReIDStandardROIHeads,
    PersonSearchRes5ROIHeads,
    PersonSearchStandardROIHeads,
)

__all__ = [
    "MemoryReIDRes5ROIHeads",
    "MemoryReIDStandardROIHeads",
    "PersonSearchRCNN",
    "PersonSearchRPN",
    "PersonSearchRes5ROIHeads",
    "PersonSearchStandardROIHeads",
    "ReIDBranch",
    "proposal_pids",
]
