"""OLA: weakly supervised person search (AAAI 2025). Importing this package registers the `OLA`
meta-architecture and its ROI heads (OLARes5ROIHeads, OLAStandardROIHeads)."""
from .config import add_ola_config
from .dual_memory import DualMemoryEnhancement
from .meta_arch import OLA, count_training_boxes
from .prototype_matching import PrototypeMatcher, dynamic_k
from .roi_heads import OLARes5ROIHeads, OLAStandardROIHeads

__all__ = [
    "DualMemoryEnhancement", "OLA", "OLARes5ROIHeads", "OLAStandardROIHeads", "PrototypeMatcher",
    "add_ola_config", "count_training_boxes", "dynamic_k",
]
