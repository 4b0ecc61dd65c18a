"""Optimizer options shared by every method (cfg.PS.SOLVER)."""
from detectron2.config import CfgNode as CN


def add_solver_config(cfg):
    _C = cfg
    _C.PS.SOLVER = CN()
    # "SGD" (momentum SOLVER.MOMENTUM) or "AdamW" (SPNet Table 2, PSDiff).
    _C.PS.SOLVER.OPTIMIZER = "SGD"
    _C.PS.SOLVER.ADAMW_BETAS = (0.9, 0.999)
    # Backbone learning rate and weight decay; negative: same as SOLVER.BASE_LR / SOLVER.WEIGHT_DECAY.
    _C.PS.SOLVER.BACKBONE_BASE_LR = -1.0
    _C.PS.SOLVER.BACKBONE_WEIGHT_DECAY = -1.0
    # Which parameters take the backbone LR / WD: "backbone" (all of model.backbone, FPN included;
    # DiffusionDet's BACKBONE_MULTIPLIER) or "bottom_up" (only the network under the FPN; the FPN
    # and P6/P7 join the post-backbone group: SPNet's Fig. 3 and its authors' `backbone.body` group).
    _C.PS.SOLVER.BACKBONE_GROUP = "backbone"
    # Seed of the training stream (image order and per-sample augmentation); negative: SEED or 0.
    _C.PS.SOLVER.STREAM_SEED = -1
