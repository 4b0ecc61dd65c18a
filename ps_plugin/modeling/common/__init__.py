"""Parts every method reuses: the meta-architecture base (the model contract's inference), OIM,
memory banks, the embedding head, the OIM table size."""
from .memory_bank import FeatureQueue, MemoryBank
from .meta_arch_base import PersonSearchMetaArch
from .num_pids import resolve_num_pids
from .oim import OIMLoss
from .reid_head import ReIDEmbeddingHead

__all__ = ["FeatureQueue", "MemoryBank", "OIMLoss", "PersonSearchMetaArch", "ReIDEmbeddingHead", "resolve_num_pids"]
