"""Hybrid pre-training (Tian et al., AAAI'24) from detection-only and re-id-only data."""
from .config import add_pretrain_config

__all__ = ["add_pretrain_config"]
