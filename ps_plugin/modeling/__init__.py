"""Models. Importing this package registers backbones, ROI heads and meta-architectures."""
from . import backbones  # noqa: F401  (registers build_timm_backbone)
from . import baseline  # noqa: F401  (registers PersonSearchRCNN and the ROI heads)
from . import laid  # noqa: F401  (registers LAID)
from . import ola  # noqa: F401  (registers OLA)
from . import pretrain  # noqa: F401  (registers HybridPretrain)
from . import psdiff  # noqa: F401  (registers PSDiff)
from . import spnet  # noqa: F401  (registers SPNet and build_spnet_timm_fpn_backbone)
from .backbones import TimmBackbone
from .baseline import PersonSearchRCNN, PersonSearchRes5ROIHeads, PersonSearchStandardROIHeads
from .common import FeatureQueue, MemoryBank, OIMLoss, ReIDEmbeddingHead

__all__ = [
    "FeatureQueue",
    "MemoryBank",
    "OIMLoss",
    "PersonSearchRCNN",
    "PersonSearchRes5ROIHeads",
    "PersonSearchStandardROIHeads",
    "ReIDEmbeddingHead",
    "TimmBackbone",
]
