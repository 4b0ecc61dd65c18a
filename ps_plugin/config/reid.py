"""Keys of the shared re-id parts (embedding head, OIM) and of the timm backbones."""
from detectron2.config import CfgNode as CN


def add_reid_config(cfg):
    """Add cfg.PS.REID (embedding head + OIM) and cfg.PS.BACKBONE (timm backbones)."""
    _C = cfg
    _C.PS.REID = CN()
    # Embedding size (OIM / SeqNet / NAE: 256).
    _C.PS.REID.EMBED_DIM = 256
    # BatchNorm1d after the embedding projection.
    _C.PS.REID.HEAD_BN = True
    # Rows of the OIM lookup table; 0: the sum of `num_pids` of DATASETS.TRAIN's metadata
    # (loads the training sets at model build when their metadata does not carry it yet).
    _C.PS.REID.NUM_PIDS = 0
    # OIM LUT momentum (OIM paper Sec. 3.2: 0.5).
    _C.PS.REID.LUT_MOMENTUM = 0.5
    # OIM unlabeled circular queue: 5000 for CUHK-SYSU, 500 for PRW (OIM / SeqNet).
    _C.PS.REID.QUEUE_SIZE = 5000
    # Inverse temperature of the OIM logits (temperature 1/30).
    _C.PS.REID.SCALAR = 30.0
    _C.PS.REID.LOSS_WEIGHT = 1.0
    # FPN / single-map heads: re-id reads the pooled ROI features through its own copy of the box
    # head (True), or the box head's output shared with the box predictor (False).
    _C.PS.REID.SEPARATE_BOX_HEAD = True
    # Norm-aware embedding (NAE, CVPR 2020): the embedding norm gives the detection score.
    _C.PS.REID.NAE = False
    _C.PS.REID.NAE_LOSS_WEIGHT = 1.0

    _C.PS.BACKBONE = CN()
    # timm model name used by MODEL.BACKBONE.NAME = "build_timm_backbone" (always pretrained=False):
    # mobilenetv2_100, convnext_tiny, convnext_base, swin_tiny_patch4_window7_224,
    # swin_base_patch4_window7_224, ...
    _C.PS.BACKBONE.NAME = "mobilenetv2_100"
    # Outputs named by stride: res2 (1/4), res3 (1/8), res4 (1/16), res5 (1/32).
    _C.PS.BACKBONE.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    # Wrap in Detectron2's FPN (MODEL.FPN.OUT_CHANNELS / NORM / FUSE_TYPE, LastLevelMaxPool -> p6).
    _C.PS.BACKBONE.FPN = True
    # Local timm-named state dict loaded into the timm model at build (tools/convert_pretrained.py
    # output or a timm checkpoint). "": random init. MODEL.WEIGHTS loads after it.
    _C.PS.BACKBONE.WEIGHTS = ""
    # Replace BatchNorm by frozen BatchNorm (Detectron2's FrozenBN convention for small batches).
    _C.PS.BACKBONE.FREEZE_BN = True
