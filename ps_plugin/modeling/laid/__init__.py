"""LAID (AAAI'26), domain-adaptive person search: its parts, each usable on its own by the
meta-architecture and the per-epoch pseudo-labelling hook (docs/LAID.md).

caim (eq. 1-3: matching this epoch's target detections to last epoch's proposals), dscl (eq. 4-9:
cross-domain proxy contrast and the in-image separation loss), tsa (eq. 10: detector / re-id
confidence alignment), rpn (the RPN whose proposals keep their objectness gradient, TSA's P), proxy_memory (the rows of L_cross), pseudo_labels (stage 1 on given
detections), meta_arch (the `LAID` meta-architecture), config (cfg.PS.LAID)."""
from .caim import CostAwareInstanceMatching, TrackCache, greedy_assignment, jv_assignment
from .config import add_laid_config, check_laid_config
from .dscl import (
    IntraImageLoss,
    batch_hard_triplet_loss,
    cross_domain_contrastive_loss,
    separation_loss,
    union_find_groups,
)
from .meta_arch import DOMAIN_IDS, LAID
from .proxy_memory import ProxyMemory
from .rpn import DifferentiableObjectnessRPN
from .tsa import TaskSensitivityAlignment, binary_kl

__all__ = [
    "DOMAIN_IDS",
    "LAID",
    "ProxyMemory",
    "CostAwareInstanceMatching",
    "DifferentiableObjectnessRPN",
    "IntraImageLoss",
    "TaskSensitivityAlignment",
    "TrackCache",
    "add_laid_config",
    "batch_hard_triplet_loss",
    "binary_kl",
    "check_laid_config",
    "cross_domain_contrastive_loss",
    "greedy_assignment",
    "jv_assignment",
    "separation_loss",
    "union_find_groups",
]
