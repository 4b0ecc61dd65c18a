"""SPNet's FPN: P3-P5 from C3-C5 plus P6/P7 built from C5 (RetinaNet style; authors' code)."""
from detectron2.modeling import BACKBONE_REGISTRY, FPN
from detectron2.modeling.backbone.fpn import LastLevelP6P7

from ps_plugin.modeling.backbones import TimmBackbone, load_timm_weights


@BACKBONE_REGISTRY.register()
def build_spnet_timm_fpn_backbone(cfg, input_shape):
    """MODEL.BACKBONE.NAME = "build_spnet_timm_fpn_backbone": a timm model (cfg.PS.BACKBONE.NAME,
    e.g. convnext_tiny / convnext_base, pretrained=False, PS.BACKBONE.WEIGHTS loaded when given)
    with an FPN on PS.BACKBONE.OUT_FEATURES (res3-res5) giving p3-p7.

    For ResNet use Detectron2's `build_retinanet_resnet_fpn_backbone` (the same P6/P7 from C5).
    """
    bottom_up = TimmBackbone(
        cfg.PS.BACKBONE.NAME, cfg.PS.BACKBONE.OUT_FEATURES, in_channels=input_shape.channels,
        freeze_bn=cfg.PS.BACKBONE.FREEZE_BN, drop_path_rate=cfg.PS.BACKBONE.DROP_PATH_RATE,
    )
    if cfg.PS.BACKBONE.WEIGHTS:
        load_timm_weights(bottom_up.body, cfg.PS.BACKBONE.WEIGHTS)
    last = bottom_up._out_features[-1]
    return FPN(
        bottom_up=bottom_up,
        in_features=bottom_up._out_features,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelP6P7(bottom_up.output_shape()[last].channels, cfg.MODEL.FPN.OUT_CHANNELS, in_feature=last),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
