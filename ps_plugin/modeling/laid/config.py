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
    "HARD_NEGATIVE.MIN_SCORE",
    "HARD_NEGATIVE.IOU",
)
CAIM_MATCHING = ("jv", "greedy")
DSCL_INTRA_LOSSES = ("separation", "triplet", "none")
TSA_MODES = ("rpn_from_reid", "bidirectional", "off")
TSA_DETECTORS = ("rpn", "box")
DETECTION_SCORES = ("box", "nae")


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
    # Where P of eq. 10 comes from. "rpn": the RPN objectness sigmoid(logit) of the anchor each sampled
    # proposal came from, with gradient into the RPN (the paper: "P ... from RPN classification scores";
    # needs MODEL.PROPOSAL_GENERATOR.NAME "DifferentiableObjectnessRPN"); the ground-truth boxes the ROI
    # sampling appends have no anchor and are left out. "box": the box classifier's person probability of
    # every sampled proposal (the first-stage score of SeqNet, which DSCA builds on; no gradient into the RPN).
    _C.PS.LAID.TSA.DETECTOR = "rpn"
    # The paper gives no weight for L_TSA.
    _C.PS.LAID.TSA.WEIGHT = 1.0


def add_laid_pipeline_config(cfg):
    """The DSCA pipeline LAID builds on (methods_facts.md Sec. C): when target pseudo labels start,
    the weights of the target losses, the hard negatives, the clustering, the proxy memory and the
    DA-Faster domain classifiers."""
    _C = cfg
    # First target epoch with pseudo labels (stage 1): DSCA TARGET_REID_START, 8 for CUHK-SYSU -> PRW,
    # 3 for PRW -> CUHK-SYSU. Before it the target images feed only the domain classifiers.
    _C.PS.LAID.TARGET_REID_START = 8
    # Target RPN, box and re-id losses on pseudo boxes are scaled: detection x 0.1 (DSCA); re-id
    # x LW_BOX_REID_T: 0.1 for CUHK-SYSU -> PRW, 0.5 for PRW -> CUHK-SYSU.
    _C.PS.LAID.TARGET_DET_WEIGHT = 0.1
    _C.PS.LAID.TARGET_REID_WEIGHT = 0.1
    # Hard negatives: target detections scoring in [MIN_SCORE, epsilon) whose IoU with every kept box
    # is <= IOU (DSCA: 0.8 and HM_THRESH 0.5); they join the memory as rows no box learns towards.
    _C.PS.LAID.HARD_NEGATIVE = CN()
    _C.PS.LAID.HARD_NEGATIVE.ENABLED = True
    _C.PS.LAID.HARD_NEGATIVE.MIN_SCORE = 0.8
    _C.PS.LAID.HARD_NEGATIVE.IOU = 0.5
    # Pseudo identities: DBSCAN (eps 0.5, min_samples 4, the paper) on the k-reciprocal Jaccard
    # distance (k1 30, k2 6; DSCA) of the CAIM-smoothed features; outliers become classes of their own.
    _C.PS.LAID.CLUSTER = CN()
    _C.PS.LAID.CLUSTER.EPS = 0.5
    _C.PS.LAID.CLUSTER.MIN_SAMPLES = 4
    _C.PS.LAID.CLUSTER.K1 = 30
    _C.PS.LAID.CLUSTER.K2 = 6
    # The detection score (inference, and CAIM's epsilon in stage 1): "box", the Faster R-CNN box
    # classifier's person probability (DSCA thresholds SeqNet's first-stage score); "nae", the re-id
    # head's norm-aware confidence (the baseline's score with PS.REID.NAE).
    _C.PS.LAID.DETECTION_SCORE = "box"
    # Domain-specific BatchNorm in the re-id embedding head (DSBN; DSCA converts its re-id head's BNs):
    # off by default, the paper does not name it. Inference uses the target BN.
    _C.PS.LAID.DSBN = False
    # Online momentum of the proxy rows (slot <- m old + (1 - m) new; DSCA 0.2).
    _C.PS.LAID.MEMORY_MOMENTUM = 0.2
    # DA-Faster domain alignment (modeling/common/domain_adversarial.py): image-level classifier on the
    # backbone map, instance-level on the sampled proposals' ROI features, consistency between them;
    # gradient reversal weight 0.1, loss weights img 1, ins 1, cst 0.1 (DSCA).
    _C.PS.LAID.DA = CN()
    _C.PS.LAID.DA.ENABLED = True
    _C.PS.LAID.DA.GRL_WEIGHT = 0.1
    _C.PS.LAID.DA.IMAGE_WEIGHT = 1.0
    _C.PS.LAID.DA.INSTANCE_WEIGHT = 1.0
    _C.PS.LAID.DA.CONSISTENCY_WEIGHT = 0.1


def add_laid_config(cfg):
    """Every LAID key under cfg.PS.LAID."""
    cfg.PS.LAID = CN()
    add_laid_pipeline_config(cfg)
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
    switches = (("CAIM.MATCHING", CAIM_MATCHING), ("DSCL.INTRA_LOSS", DSCL_INTRA_LOSSES), ("TSA.MODE", TSA_MODES),
                ("TSA.DETECTOR", TSA_DETECTORS), ("DETECTION_SCORE", DETECTION_SCORES))
    for key, choices in switches:
        if _value(cfg, key) not in choices:
            raise ValueError(f"PS.LAID.{key}='{_value(cfg, key)}' is not one of {choices}.")
