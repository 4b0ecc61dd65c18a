"""`add_spnet_config(cfg)`: every SPNet key under cfg.PS.SPNET, with the paper's defaults.

Sources: "Swap Path Network for Robust Person Search Pre-training" (WACV'25), main text
Sec. 3-4, Table 2 (model and optimisation settings), supplementary Sec. 8-9; where the authors'
code (LLNL/spnet) differs, its value is named in the comment and is one config change away.
"""
from detectron2.config import CfgNode as CN


def add_spnet_model_config(cfg):
    """Architecture (Table 2 top; Table 7 top for the ablation grid)."""
    _C = cfg
    _C.PS.SPNET = CN()
    # "oc" (object-centric, Bridge Layer; the default for fine-tuning and evaluation, Sec. 4.1)
    # or "qc" (query-centric, Offset Layer; pre-training, Sec. 3.2).
    _C.PS.SPNET.MODE = "oc"
    # FPN maps the Anchor Embedder runs on (P3-P7, 9 anchors per location; the paper's "P3-C7").
    _C.PS.SPNET.IN_FEATURES = ["p3", "p4", "p5", "p6", "p7"]
    # Dimension d of x_a, x_q^det and x_o (128 in every variant, Table 2).
    _C.PS.SPNET.EMBED_DIM = 128
    # Shared Box Embedder for re-id and detection (x_q^reid = x_q^det): True SPNet-S, False SPNet-L.
    _C.PS.SPNET.SHARED_HEADS = True
    # Cascade steps T: 0 SPNet-S, 2 SPNet-L (Table 2). T + 1 box-prediction stages in all.
    _C.PS.SPNET.CASCADE_STEPS = 0
    # Paper Sec. 3.1: the Box Embedder is duplicated per cascade stage. The authors' code keeps a
    # single Box Embedder for every stage when heads are shared: set True for that variant.
    _C.PS.SPNET.CASCADE_SHARE_BOX_EMBEDDER = False
    # Bridge Layer g_phi initialisation: "zeros" (authors' code: x_o = -x_a at start) or "default".
    _C.PS.SPNET.BRIDGE_INIT = "zeros"
    # Anchor Embedder bias (fixed_norm.anchor_bias_value): "prior_score" starts every anchor at
    # score ANCHOR_PRIOR_PROB = pi (RetinaNet's prior, bias -log((1 - pi) / pi) on the logit);
    # "prior_channel" puts -log((1 - pi) / pi) on every bias channel (authors' code, -log 99);
    # "zeros" starts every anchor at score ~1 under FixedNorm.
    _C.PS.SPNET.ANCHOR_BIAS_INIT = "prior_score"
    _C.PS.SPNET.ANCHOR_PRIOR_PROB = 0.01
    add_spnet_box_embedder_config(cfg)
    add_spnet_logits_config(cfg)


def add_spnet_box_embedder_config(cfg):
    """Box Embedder: RoIAlign on the FPN, then a conv head and max-pooled projections."""
    _C = cfg
    _C.PS.SPNET.BOX_EMBEDDER = CN()
    # RoIAlign on this single FPN map (authors' code: P3 only, no level assignment).
    _C.PS.SPNET.BOX_EMBEDDER.IN_FEATURE = "p3"
    _C.PS.SPNET.BOX_EMBEDDER.POOLER_RESOLUTION = 14
    _C.PS.SPNET.BOX_EMBEDDER.POOLER_SAMPLING_RATIO = 2
    # Head on the 14x14 RoI: "last_stage" deep-copies the backbone's last stage (authors' code;
    # needs MODEL.FPN.OUT_CHANNELS = C4 width) or "conv" (two stride-2 3x3 convs, any backbone).
    _C.PS.SPNET.BOX_EMBEDDER.HEAD = "last_stage"
    # Channels of the "conv" head.
    _C.PS.SPNET.BOX_EMBEDDER.CONV_DIM = 256
    # Activation checkpointing of the head in training, on chunks of this many RoIs (0: off, as the
    # authors). A copied ConvNeXt-B stage keeps ~10 MB of activations per RoI, and SPNet-L's cascade
    # runs it on every sampled box of each stage (docs/BENCHMARKS.md, SPNet training memory).
    _C.PS.SPNET.BOX_EMBEDDER.CHECKPOINT_CHUNK = 0


def add_spnet_logits_config(cfg):
    """Logits Layer (Sec. 3.3, supplementary Sec. 9.2, Table 9)."""
    _C = cfg
    # "fixed_norm" (eq. 3-4, no parameter) or "batch_norm" (Norm-Aware Embedding logits, Table 9).
    _C.PS.SPNET.LOGITS = "fixed_norm"
    # Negate the standardised norm: True is "(-)" in Table 9 (the paper's choice).
    _C.PS.SPNET.LOGITS_NEGATE = True


def add_spnet_training_config(cfg):
    """Anchor matching, sampling and detection losses (Sec. 3.2-3.3, supplementary Sec. 8)."""
    _C = cfg
    _C.PS.SPNET.TRAIN = CN()
    # Anchor matching: IoU >= 0.5 is positive, below is negative (Sec. 3.2). Authors' code:
    # IOU_THRESHOLDS (0.4, 0.5), IOU_LABELS (0, -1, 1), ALLOW_LOW_QUALITY_MATCHES True.
    _C.PS.SPNET.TRAIN.IOU_THRESHOLDS = [0.5]
    _C.PS.SPNET.TRAIN.IOU_LABELS = [0, 1]
    _C.PS.SPNET.TRAIN.ALLOW_LOW_QUALITY_MATCHES = False
    # Focal loss on anchor logits z_a (Sec. 3.3).
    _C.PS.SPNET.TRAIN.FOCAL_ALPHA = 0.5
    _C.PS.SPNET.TRAIN.FOCAL_GAMMA = 1.0
    # Normalisation of the anchor and class losses: "num_pos" (authors' code: summed / number of
    # positives of the batch, all-reduced over ranks) or "mean" (the paper's wording: averaged over
    # all anchors / predicted boxes; with ~1e6 anchors L_anc is then ~1000x weaker).
    _C.PS.SPNET.TRAIN.ANCHOR_LOSS_NORM = "num_pos"
    _C.PS.SPNET.TRAIN.CLS_LOSS_NORM = "num_pos"
    # Class loss L_cls on the stage-0 box predictions too (the paper's sum runs t = 1..T+1);
    # the authors' code has it only from stage 1 (stage 0's score equals the anchor score).
    _C.PS.SPNET.TRAIN.STAGE0_CLS_LOSS = True
    # Anchors optimised by the Box Detector per batch (supplementary Sec. 8: 2,048 for QC and OC;
    # authors' code uses 1,024 when fine-tuning).
    _C.PS.SPNET.TRAIN.NUM_SAMPLED_ANCHORS = 2048
    _C.PS.SPNET.TRAIN.POSITIVE_FRACTION = 0.5
    # QC query-image pairs per batch (supplementary Sec. 8); anchors per pair =
    # NUM_SAMPLED_ANCHORS // QC_PAIRS_PER_BATCH (64).
    _C.PS.SPNET.TRAIN.QC_PAIRS_PER_BATCH = 32
    # Anchors of a QC pair (matching.hard_qc_anchors): "hard" (authors' code: the K/2 highest-GIoU
    # anchors plus the hardest, smallest-||x_o||, ones; only the hardest when the query is absent) or
    # "random" (balanced random sample with POSITIVE_FRACTION).
    _C.PS.SPNET.TRAIN.QC_ANCHOR_CHOICE = "hard"
    # Predicted boxes with IoU >= this to a GT box join the re-id loss (Sec. 3.3).
    _C.PS.SPNET.TRAIN.REID_IOU_THRESH = 0.7
    # Identity of a GT box: "pid" (gt_pids; unlabeled boxes fall back to their box) or "box"
    # (every physical box is its own identity, shared by its k views: weakly labeled pre-training).
    _C.PS.SPNET.TRAIN.LABELS = "pid"
    # Box regression deltas (dx, dy, dw, dh) with unit weights; dw/dh clamped at log(1000/16).
    _C.PS.SPNET.TRAIN.BBOX_REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0)


def add_spnet_reid_config(cfg):
    """Re-id losses (Sec. 3.3, 4.2): OIM for fine-tuning, MoCo for pre-training."""
    _C = cfg
    _C.PS.SPNET.REID = CN()
    # "oim" (fine-tuning) or "moco" (pre-training).
    _C.PS.SPNET.REID.LOSS = "oim"
    # OIM (Sec. 4.2: temperature 1/30, momentum 0.5, queue 5,000 CUHK-SYSU / 500 PRW) is the
    # shared one and reads cfg.PS.REID (NUM_PIDS, LUT_MOMENTUM, QUEUE_SIZE, SCALAR).
    # MoCo (Sec. 4.2): queue 65,536, encoder momentum 0.9999, temperature 0.1.
    _C.PS.SPNET.REID.MOCO_QUEUE_SIZE = 65536
    _C.PS.SPNET.REID.MOCO_MOMENTUM = 0.9999
    _C.PS.SPNET.REID.MOCO_TEMPERATURE = 0.1
    # Positive centroid x_m-bar: mean of predicted boxes with IoU >= REID_IOU_THRESH (paper).
    # True also averages in the GT box's own momentum embedding (authors' code).
    _C.PS.SPNET.REID.MOCO_CENTROID_INCLUDE_GT = False


def add_spnet_inference_config(cfg):
    """Inference (authors' code, Sec. 4 of the facts sheet)."""
    _C = cfg
    _C.PS.SPNET.TEST = CN()
    # OC: anchors kept by smallest ||x_o|| before regression; QC: per query and gallery image.
    _C.PS.SPNET.TEST.OC_TOPK_ANCHORS = 1000
    _C.PS.SPNET.TEST.QC_TOPK_ANCHORS = 100
    _C.PS.SPNET.TEST.SCORE_THRESH = 0.5
    _C.PS.SPNET.TEST.NMS_THRESH = 0.5
    _C.PS.SPNET.TEST.DETECTIONS_PER_IMAGE = 300


def add_spnet_loading_config(cfg):
    """Loading a pre-trained SPNet into a (larger) fine-tuning model (supplementary Sec. 9.2)."""
    _C = cfg
    # Without PS.BACKBONE.WEIGHTS and MODEL.WEIGHTS the backbone starts from random init, which no
    # SPNet result uses: the model warns loudly at build unless this says random init is meant.
    _C.PS.SPNET.RANDOM_INIT = False
    # PT-Rep (Fig. 8): stage-0 weights (Bridge, Box Detector, detection Box Embedder) fill every
    # cascade stage the checkpoint lacks. False: those stages keep their random init (PT).
    _C.PS.SPNET.LOAD_REPLICATE = True
    # A shared-heads checkpoint loaded into a separate-heads model initialises the detection
    # Box Embedders' conv head from the re-id Box Embedder (authors' code `ckpt_load_share`).
    _C.PS.SPNET.LOAD_SHARED_INTO_SEPARATE = True


def add_spnet_config(cfg):
    """Add cfg.PS.SPNET (needs cfg.PS from add_ps_config)."""
    add_spnet_model_config(cfg)
    add_spnet_training_config(cfg)
    add_spnet_reid_config(cfg)
    add_spnet_inference_config(cfg)
    add_spnet_loading_config(cfg)
