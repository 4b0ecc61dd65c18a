"""Keys of the timm backbones (MODEL.BACKBONE.NAME = "build_timm_backbone"): cfg.PS.BACKBONE."""
from detectron2.config import CfgNode as CN


def add_backbone_config(cfg):
    """Add cfg.PS.BACKBONE."""
    _C = cfg
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
    # Stochastic depth (drop-path rate, timm's drop_path_rate) while training: 0 off. SPNet's
    # ConvNeXt backbones keep torchvision's defaults, 0.1 for ConvNeXt-T and 0.5 for ConvNeXt-B.
    _C.PS.BACKBONE.DROP_PATH_RATE = 0.0
