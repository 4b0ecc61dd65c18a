"""`add_laid_config(cfg)`: every LAID key under cfg.PS.LAID, with the paper's defaults.

Source: "Localization-Anchored Instance Discrimination for Domain Adaptive Person Search"
(AAAI'26), Sec. "Methodology" (eq. 1-10), "Implementation Details" and Tables 2-4; where the paper
is silent, the value of the pipeline it builds on (DSCA, AAAI'25) is named in the comment
(../shared/notes/methods_facts.md, Sec. C). Defaults are the CUHK-SYSU -> PRW setting (target PRW).
"""
from detectron2.config import CfgNode as CN

# Keys that are fractions: `check_laid_config` rejects values outside [0, 1].
UNIT_INTERVAL_KEYS = (
    "CAIM.SCORE_THRESH",
    "CAIM.LOOSE_FACTOR",
    "CAIM.IOU_GATE",
    "CAIM.MOMENTUM",
    "DSCL.GROUP_IOU",
    "DSCL.MARGIN_SOURCE",
    "DSCL.MARGIN_TARGET",
)
CAIM_MATCHING = ("jv", "greedy")
DSCL_INTRA_LOSSES = ("separation", "triplet", "none")
TSA_MODES = ("rpn_from_reid", "bidirectional", "off")


def add_laid_caim_config(cfg):
    """Cost-Aware Instance Matching (eq. 1-3, Table 2)."""
    _C = cfg
    _C.PS.LAID.CAIM = CN()
    # Strict confidence threshold epsilon: a detection starts a new track above it. DSCA's EPS_P:
    # 0.98 for target PRW, 0.95 for target CUHK-SYSU.
    _C.PS.LAID.CAIM.SCORE_THRESH = 0.98
    # Loose candidates (score >= alpha * epsilon) take part in matching: alpha = 0.95.
    _C.PS.LAID.CAIM.LOOSE_FACTOR = 0.95
    # Table 2 "w/o Loose Threshold": False matches only candidates above epsilon.
    _C.PS.LAID.CAIM.LOOSE = True
    # A pair is valid only for IoU > 0.7 (eq. 1's constraint; DSCA's greedy matching uses the same).
    _C.PS.LAID.CAIM.IOU_GATE = 0.7
    # "jv": one-to-one minimum-cost assignment (Jonker-Volgenant, scipy linear_sum_assignment);
    # "greedy": each detection takes its maximum-IoU history box (DSCA; Table 2 "w/o Global Matching").
    _C.PS.LAID.CAIM.MATCHING = "jv"
    # History weight lambda of eq. 2: 0.2 for target PRW, 0.6 for target CUHK-SYSU.
    _C.PS.LAID.CAIM.MOMENTUM = 0.2


def add_laid_dscl_config(cfg):
    """Dual-Scope Contrastive Learning (eq. 4-9, Table 3)."""
    _C = cfg
    _C.PS.LAID.DSCL = CN()
    # Temperature tau of L_cross (eq. 4): DSCA's cluster-proxy memory uses 0.05.
    _C.PS.LAID.DSCL.CROSS_TEMPERATURE = 0.05
    # L_intra (eq. 7): "separation" (the paper), "triplet" (batch-hard triplet, Table 3 row 2) or
    # "none" (Table 3 row 1).
    _C.PS.LAID.DSCL.INTRA_LOSS = "separation"
    # Union-find grouping of an image's foreground proposals at IoU > theta (eq. 5): 0.3.
    _C.PS.LAID.DSCL.GROUP_IOU = 0.3
    # Separation margin gamma (eq. 7): 0.5 on the source domain, 0.7 on the target domain.
    _C.PS.LAID.DSCL.MARGIN_SOURCE = 0.5
    _C.PS.LAID.DSCL.MARGIN_TARGET = 0.7
    # Hardness temperature tau of the pair weights (eq. 8); the paper gives no value.
    _C.PS.LAID.DSCL.INTRA_TEMPERATURE = 0.1
    _C.PS.LAID.DSCL.INTRA_WEIGHT = 1.0


def add_laid_tsa_config(cfg):
    """Task-Sensitivity Alignment (eq. 10, Table 4)."""
    _C = cfg
    _C.PS.LAID.TSA = CN()
    # "rpn_from_reid": KL(Q || P) with the re-id confidence Q detached (RPN <= ReID, the paper);
    # "bidirectional": each side aligned to the other, detached (RPN <=> ReID, Table 4 row 2); "off".
    _C.PS.LAID.TSA.MODE = "rpn_from_reid"
    # The paper gives no weight for L_TSA.
    _C.PS.LAID.TSA.WEIGHT = 1.0


def add_laid_config(cfg):
    """Every LAID key under cfg.PS.LAID."""
    cfg.PS.LAID = CN()
    add_laid_caim_config(cfg)
    add_laid_dscl_config(cfg)
    add_laid_tsa_config(cfg)


def _value(cfg, key):
    node = cfg.PS.LAID
    for part in key.split("."):
        node = node[part]
    return node


def check_laid_config(cfg):
    """ValueError naming the key for a fraction outside [0, 1] or an unknown switch value."""
    for key in UNIT_INTERVAL_KEYS:
        value = _value(cfg, key)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"PS.LAID.{key}={value} is outside [0, 1]; set a fraction (paper values: config.py).")
    switches = (("CAIM.MATCHING", CAIM_MATCHING), ("DSCL.INTRA_LOSS", DSCL_INTRA_LOSSES), ("TSA.MODE", TSA_MODES))
    for key, choices in switches:
        if _value(cfg, key) not in choices:
            raise ValueError(f"PS.LAID.{key}='{_value(cfg, key)}' is not one of {choices}.")
