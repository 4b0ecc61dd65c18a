"""Re-id parts every method reuses: OIM, memory banks, the embedding head."""
from .memory_bank import FeatureQueue, MemoryBank
from .oim import OIMLoss
from .reid_head import ReIDEmbeddingHead

__all__ = ["FeatureQueue", "MemoryBank", "OIMLoss", "ReIDEmbeddingHead"]
