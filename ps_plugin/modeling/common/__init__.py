"""Parts every method reuses: the meta-architecture base (the model contract's inference), OIM,
memory banks, the hybrid cluster memory of pseudo-label methods, the embedding head, the OIM table
size, multi-view inputs. Assignment solvers and clustering: the submodules `assignment` and `clustering`."""
from .hybrid_memory import ClusterMemoryModel, HybridClusterMemory, PseudoLabelState
from .memory_bank import FeatureQueue, MemoryBank
from .meta_arch_base import PersonSearchMetaArch, split_per_image
from .num_pids import resolve_num_pids
from .oim import OIMLoss
from .reid_head import ReIDEmbeddingHead
from .views import flatten_views, record_views

__all__ = [
    "ClusterMemoryModel",
    "FeatureQueue",
    "HybridClusterMemory",
    "MemoryBank",
    "OIMLoss",
    "PersonSearchMetaArch",
    "PseudoLabelState",
    "ReIDEmbeddingHead",
    "flatten_views",
    "record_views",
    "resolve_num_pids",
    "split_per_image",
]
