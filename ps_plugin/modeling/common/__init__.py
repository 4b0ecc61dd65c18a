"""Parts every method reuses: the meta-architecture base (the model contract's inference), OIM,
memory banks, the embedding head."""
from .memory_bank import FeatureQueue, MemoryBank
from .meta_arch_base import PersonSearchMetaArch
from .oim import OIMLoss
from .reid_head import ReIDEmbeddingHead

__all__ = ["FeatureQueue", "MemoryBank", "OIMLoss", "PersonSearchMetaArch", "ReIDEmbeddingHead"]
