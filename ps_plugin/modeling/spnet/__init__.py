"""SPNet: Swap Path Network (WACV'25). Importing this package registers the `SPNet`
meta-architecture and the `build_spnet_timm_fpn_backbone` backbone."""
from . import backbone, meta_arch  # noqa: F401  (registration)
from .cascade import CascadeStage, SPNetCascade
from .checkpoint import fill_missing_stage_weights, install_stage_filling_hook
from .config import add_spnet_config
from .embedders import AnchorEmbedder, BoxEmbedder, build_box_embedder
from .fixed_norm import BatchNormLogits, FixedNormLogits, build_logits_layer, chi_mean_std
from .meta_arch import SPNet
from .moco import MomentumContrast, label_centroids, positive_centroids
from .pair_sampling import QueryPair, box_identity_labels, pair_group, sample_query_pairs
from .query_conditioned import SPNetQueryConditioned
from .swap_path import SwapPathBlock
from .training import SPNetTraining, TrainRows

__all__ = [
    "AnchorEmbedder", "BatchNormLogits", "BoxEmbedder", "CascadeStage", "FixedNormLogits", "MomentumContrast",
    "QueryPair", "SPNet", "SPNetCascade", "SPNetQueryConditioned", "SPNetTraining", "SwapPathBlock", "TrainRows",
    "add_spnet_config", "box_identity_labels", "build_box_embedder", "build_logits_layer", "chi_mean_std",
    "fill_missing_stage_weights", "install_stage_filling_hook", "label_centroids", "pair_group",
    "positive_centroids", "sample_query_pairs",
]
