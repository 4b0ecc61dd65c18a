"""Keys of OLA (Zhu et al., "Optimizing Label Assignment for Weakly Supervised Person Search",
AAAI 2025): cfg.PS.OLA. Values the paper leaves out come from the authors' released code (OL)
or are marked "guess" (../shared/notes/methods_facts.md §A)."""
from detectron2.config import CfgNode as CN


def add_ola_config(cfg):
    """Every OLA key under cfg.PS.OLA (paper Sec. "Proposed Method" and "Implementation Details")."""
    _C = cfg
    _C.PS.OLA = CN()
    # Instance-branch crops (height, width), RoIAlign on the normalised input (paper: 224 x 96).
    _C.PS.OLA.CROP_SIZE = (224, 96)
    # Test embedding: "concat" = [proposal || crop] (the authors' 512-d feature for D = 256, renormalised),
    # "proposal" = the scene branch only.
    _C.PS.OLA.TEST_EMBEDDING = "concat"

    _C.PS.OLA.MEMORY = CN()
    # Slots = training boxes; 0: counted from DATASETS.TRAIN at build (set it for inference without them).
    _C.PS.OLA.MEMORY.SIZE = 0
    # SpCL hybrid memory: temperature tau 0.05, momentum 0.2 (slot <- 0.2 old + 0.8 new) (code).
    _C.PS.OLA.MEMORY.TEMPERATURE = 0.05
    _C.PS.OLA.MEMORY.MOMENTUM = 0.2
    # 0.5 L_P + 0.5 L_I (code), plus the proposal-crop similarity term 1 - cos (code: weight 1).
    _C.PS.OLA.MEMORY.PROPOSAL_WEIGHT = 0.5
    _C.PS.OLA.MEMORY.INSTANCE_WEIGHT = 0.5
    _C.PS.OLA.MEMORY.SIMILARITY_WEIGHT = 1.0

    # Prototype matching (eq. 3-5): OT labels for the re-id loss of the sampled proposals.
    _C.PS.OLA.PM = CN()
    # Off: Max-IoU labels (Table 1 "baseline" row).
    _C.PS.OLA.PM.ENABLED = True
    # "paper": GT suppliers with k units + a background supplier with n - sum k (eq. 4-5) over every
    # sampled proposal; "code": the authors' version, Max-IoU positives only, uniform marginals, no background.
    _C.PS.OLA.PM.MODE = "paper"
    # alpha of eq. 3 (code: 1).
    _C.PS.OLA.PM.ALPHA = 1.0
    # Units per GT: k = max(1, int(sum of the top-q IoUs)) when DYNAMIC_K (paper, after OTA), else K (paper: 3).
    _C.PS.OLA.PM.DYNAMIC_K = True
    _C.PS.OLA.PM.K = 3
    _C.PS.OLA.PM.TOP_Q = 10  # OTA's q; not in the paper or the code
    # b background crops per image, averaged into the background prototype of eq. 4 (guess).
    _C.PS.OLA.PM.NUM_BACKGROUND = 4
    # Sinkhorn: entropic epsilon 0.1 (code, OTA), iterations (OTA 50; code 100).
    _C.PS.OLA.PM.EPSILON = 0.1
    _C.PS.OLA.PM.ITERATIONS = 50

    # Clustering of the instance memory M_I before every epoch (Alg. 1).
    _C.PS.OLA.CLUSTER = CN()
    # Context-aware clustering; off: plain DBSCAN on the Jaccard distance (Table 1 rows without CAC).
    _C.PS.OLA.CLUSTER.CONTEXT = True
    # k-reciprocal Jaccard distance k1, k2 (code, SpCL).
    _C.PS.OLA.CLUSTER.K1 = 30
    _C.PS.OLA.CLUSTER.K2 = 6
    # DBSCAN eps on the Jaccard distance (code: 0.66 / 0.68 / 0.70 with SpCL's reliability criterion;
    # one eps unless RELIABILITY) and min_samples (code: 2 for CUHK-SYSU, 4 for PRW).
    _C.PS.OLA.CLUSTER.EPS = 0.68
    _C.PS.OLA.CLUSTER.MIN_SAMPLES = 4
    # SpCL's reliability criterion (code): cluster at EPS - DELTA, EPS, EPS + DELTA (code: 0.66 / 0.68 / 0.70)
    # and turn the points of unreliable clusters (independence against the loose eps above the first
    # clustering's 90 % quantile, kept for later epochs as in the code) and the less compact points
    # (against the tight eps) into outliers. Off: one DBSCAN at EPS (the paper).
    _C.PS.OLA.CLUSTER.RELIABILITY = False
    _C.PS.OLA.CLUSTER.RELIABILITY_DELTA = 0.02
    # Similarity adjustment beta in [0, 1] (paper: 0.2) and the bipartite-graph edge threshold on the
    # cosine distance (paper: 0.5).
    _C.PS.OLA.CLUSTER.BETA = 0.2
    _C.PS.OLA.CLUSTER.EDGE_DISTANCE = 0.5
    # First epoch whose labels come from clustering (Alg. 1: 0, every epoch). Before it every training box
    # is its own class (instance discrimination), so the first clustering sees a trained memory (not in the
    # paper or the code; docs/OLA.md "Clustering from a later epoch").
    _C.PS.OLA.CLUSTER.START_EPOCH = 0

    # Dual memory bank enhancement (eq. 6): cross-attention between an image's crop and proposal
    # embeddings before the losses and the memory updates.
    _C.PS.OLA.DMBE = CN()
    _C.PS.OLA.DMBE.ENABLED = True
    _C.PS.OLA.DMBE.NUM_HEADS = 4  # guess: neither the paper nor the code gives it
