"""Hybrid pre-training (Tian et al., AAAI'24) from detection-only and re-id-only data. Importing
registers the `HybridPretrain` meta-architecture."""
from .config import add_pretrain_config
from .meta_arch import HybridPretrain  # noqa: F401  (registers META_ARCH "HybridPretrain")

__all__ = ["HybridPretrain", "add_pretrain_config"]
