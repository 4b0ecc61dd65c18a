"""Parts every method reuses: the meta-architecture base (the model contract's inference), OIM,
memory banks, the embedding head, the OIM table size, multi-view inputs."""
from .memory_bank import FeatureQueue, MemoryBank
from .meta_arch_base import PersonSearchMetaArch
from .num_pids import resolve_num_pids
from .oim import OIMLoss
from .reid_head import ReIDEmbeddingHead
from .views import flatten_views, record_views

__all__ = [
    "FeatureQueue", "MemoryBank", "OIMLoss", "PersonSearchMetaArch", "ReIDEmbeddingHead", "flatten_views", "record_views",
    "resolve_num_pids",
]
