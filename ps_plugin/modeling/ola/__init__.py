"""OLA: weakly supervised person search (AAAI 2025). Importing this package registers the `OLA`
meta-architecture; its ROI heads are the baseline's MemoryReIDRes5ROIHeads / MemoryReIDStandardROIHeads."""
from .config import add_ola_config
from .dual_memory import DualMemoryEnhancement
from .meta_arch import OLA, count_training_boxes
from .prototype_matching import PrototypeMatcher, dynamic_k

__all__ = [
    "DualMemoryEnhancement", "OLA", "PrototypeMatcher",
    "add_ola_config", "count_training_boxes", "dynamic_k",
]
