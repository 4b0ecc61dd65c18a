"""`add_psdiff_config(cfg)`: every PSDiff key under cfg.PS.PSDIFF with the paper's defaults.

Paper: Jia et al., "PSDiff: Diffusion Model for Person Search with Iterative and Collaborative
Refinement", Sec. V-A.3 (implementation details). Values the paper leaves open follow DiffusionDet
(the code PSDiff builds on) and say so.
"""
from detectron2.config import CfgNode as CN


def add_psdiff_diffusion_config(cfg):
    """Dual noise generator (eq. 10) and the cosine schedule."""
    _C = cfg.PS.PSDIFF
    # N_train and N_test (Sec. V-A.3: both 300).
    _C.NUM_PROPOSALS_TRAIN = 300
    _C.NUM_PROPOSALS_TEST = 300
    # T diffusion steps and the cosine schedule of Nichol & Dhariwal (s = 0.008, beta clipped at 0.999).
    _C.TIMESTEPS = 1000
    _C.COSINE_S = 0.008
    _C.MAX_BETA = 0.999
    # s1 (boxes) and s2 (embeddings), the signal-to-noise scales of eq. 10 (Table IV(a): 2.0 and 3.0).
    _C.BOX_SCALE = 2.0
    _C.EMBED_SCALE = 3.0
    # What "s2·Norm(e0)" of eq. 10 scales: "unit" (Norm = L2 over the D elements, each element ~s2/√D)
    # or "sqrt_dim" (√D·Norm(e0), each element ~±1 before s2, as the box signal 2·b0 − 1). The paper
    # does not say which; docs/PSDIFF.md §4.
    _C.EMBED_SIGNAL = "unit"
    # How the GT set reaches N_train boxes: "repeat" (paper: uniform duplication) or "concat"
    # (DiffusionDet default: GT once + random boxes N(0.5, 1/6)). Images without GT get random boxes either way.
    _C.GT_FILL = "repeat"


def add_psdiff_head_config(cfg):
    """Collaborative Denoising Layer (Sec. IV-B.3, Fig. 3) and its prediction heads."""
    _C = cfg.PS.PSDIFF
    _C.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    _C.POOLER_RESOLUTION = 7
    _C.POOLER_SAMPLING_RATIO = 2
    _C.POOLER_TYPE = "ROIAlignV2"
    # C: channel width of F_d and F_r; F_c has 2C channels. D, the embedding size of e0, is
    # PS.REID.EMBED_DIM (= the teacher's).
    _C.HIDDEN_DIM = 256
    # Stacked CDL stages with separate weights. Paper: a single denoising layer (31M parameters,
    # Table II); DiffusionDet stacks 6. Deep supervision applies to every stage.
    _C.NUM_STAGES = 1
    _C.NUM_ATTENTION_HEADS = 8
    _C.DROPOUT = 0.0
    # Dynamic-conv inner width. DiffusionDet: 64. The paper gives 31M parameters (Table II), which neither
    # reaches with one CDL on R50-FPN (counted: 35.5M with 16, 41.8M with 64); 16 is the closer, not a match.
    _C.DYNAMIC_DIM = 16
    # Table IV(b): each interaction module on/off.
    _C.USE_SELF_ATTENTION = True
    _C.USE_DYNAMIC_CONV = True
    _C.USE_CROSS_ATTENTION = True
    # Self-attention axis over F_d: "boxes" (the N boxes of one image, as Sparse R-CNN / DiffusionDet)
    # or "tokens" (the S*S RoI positions of one box). The paper does not say which.
    _C.SELF_ATTENTION_OVER = "boxes"
    # Table IV(c): "cascaded" (paper: F_c -> e0_hat, then F_o = e0_hat -> boxes/classes) or "parallel".
    _C.PREDICTION = "cascaded"
    _C.NUM_CLS_LAYERS = 1
    _C.NUM_REG_LAYERS = 3
    _C.BBOX_WEIGHTS = (2.0, 2.0, 1.0, 1.0)
    # Focal-loss prior for the classification bias (RetinaNet / DiffusionDet).
    _C.PRIOR_PROB = 0.01


def add_psdiff_loss_config(cfg):
    """Set-prediction loss and matching cost (eq. 13-14)."""
    _C = cfg.PS.PSDIFF
    _C.CLASS_WEIGHT = 2.0
    _C.L1_WEIGHT = 5.0
    _C.GIOU_WEIGHT = 2.0
    _C.REID_WEIGHT = 5.0
    # Distance of L_reid (eq. 14) and of its matching cost: "l2" (paper: ‖Norm(e0) − ê0‖₂ on the raw ê0)
    # or "normalized_l2" (‖Norm(e0) − Norm(ê0)‖₂ = √(2 − 2·cos), the distance search uses; ê0's norm is
    # then free for the cascaded detection head). docs/PSDIFF.md §4 has the measurements behind it.
    _C.REID_LOSS = "l2"
    _C.FOCAL_ALPHA = 0.25
    _C.FOCAL_GAMMA = 2.0
    # Eq. 13 is the matching cost too, re-id term included; False matches on the box terms only.
    _C.MATCH_WITH_REID = True
    # "hungarian" (paper: bipartite, one prediction per GT) or "dynamic_k" (DiffusionDet's released
    # HungarianMatcherDynamicK, i.e. SimOTA: up to k = floor(sum of the top DYNAMIC_K_CANDIDATES IoUs)
    # predictions per GT inside its box / centre prior of radius CENTER_RADIUS; every matched
    # prediction takes the cls, box and re-id losses).
    _C.MATCHER = "hungarian"
    _C.DYNAMIC_K_CANDIDATES = 5
    _C.CENTER_RADIUS = 2.5


def add_psdiff_sampler_config(cfg):
    """Inference by iterative refinement (Algorithm 2)."""
    _C = cfg.PS.PSDIFF
    # Table V: "ddim" (paper default) or "dpm_solver++" (Lu et al. 2022b, multistep 2nd order, deterministic:
    # DDIM_ETA does not apply). Steps: 1, 2, 4 or 8 (paper default 8).
    _C.SAMPLER = "ddim"
    _C.SAMPLE_STEPS = 8
    # DDIM eta; the paper gives none, DiffusionDet's code uses 1.0; 0.0 is deterministic DDIM.
    _C.DDIM_ETA = 1.0
    # DiffusionDet box renewal: boxes scoring <= RENEWAL_THRESH are replaced by fresh noise each step.
    _C.BOX_RENEWAL = True
    _C.RENEWAL_THRESH = 0.5
    # DiffusionDet ensemble of every step's predictions (Algorithm 2 returns the last step only).
    _C.ENSEMBLE_STEPS = False
    # Class-wise NMS on the final detections (DiffusionDet USE_NMS); <= 0 disables it.
    _C.NMS_THRESH = 0.5
    # Seed of the embedding noise when embedding given boxes (query boxes, GT boxes for GT mAP), so an
    # embedding does not change between runs.
    _C.QUERY_SEED = 0
    # Seed of the gallery sampling noise (initial boxes and embeddings, DDIM η noise, renewed boxes),
    # drawn afresh for every inference batch, so a checkpoint's numbers repeat run to run (one image per
    # test batch: every image starts from the same draw). < 0: torch's global RNG (DiffusionDet).
    _C.SAMPLE_SEED = 0


def add_psdiff_teacher_config(cfg):
    """Frozen re-id teacher giving e0 = Teacher(S, b0) (eq. 11); used in training only."""
    _C = cfg.PS.PSDIFF
    _C.TEACHER = CN()
    # Config yaml of the teacher model (any ps_plugin meta-architecture answering QUERY_BOXES with
    # QUERY_EMBEDDINGS, ps_plugin.structures).
    _C.TEACHER.CONFIG_FILE = ""
    # Local checkpoint of the trained teacher (e.g. output/baseline/model_final.pth).
    _C.TEACHER.WEIGHTS = ""


def add_psdiff_config(cfg):
    """Add the cfg.PS.PSDIFF node (cfg must already hold cfg.PS)."""
    cfg.PS.PSDIFF = CN()
    add_psdiff_diffusion_config(cfg)
    add_psdiff_head_config(cfg)
    add_psdiff_loss_config(cfg)
    add_psdiff_sampler_config(cfg)
    add_psdiff_teacher_config(cfg)
