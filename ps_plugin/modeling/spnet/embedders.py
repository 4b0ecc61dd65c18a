"""Anchor Embedder and Box Embedder (Sec. 3.1, Fig. 3)."""
import copy

import torch
from detectron2.modeling.poolers import ROIPooler
from torch.utils.checkpoint import checkpoint
from detectron2.structures import Boxes
from torch import nn

from ps_plugin.modeling.common.reid_head import _batch_norm


class AnchorEmbedder(nn.Module):
    """Initial anchor embeddings x_a^0: one 3x3 conv C -> A*d shared across FPN levels.

    forward: list of L maps [B, C, H_l, W_l] -> [B, sum_l H_l*W_l*A, d], ordered level, y, x,
    anchor: the order of Detectron2's DefaultAnchorGenerator. Weights start ~N(0, 0.01), every bias
    channel at `bias` (fixed_norm.anchor_bias_value: the prior that starts anchors as background).
    """

    def __init__(self, in_channels, num_anchors, dim, bias=0.0):
        super().__init__()
        self.num_anchors = num_anchors
        self.dim = dim
        self.conv = nn.Conv2d(in_channels, num_anchors * dim, kernel_size=3, padding=1)
        nn.init.normal_(self.conv.weight, std=0.01)
        nn.init.constant_(self.conv.bias, bias)

    def forward(self, features):
        per_level = []
        for feature in features:
            batch, _, height, width = feature.shape
            x = self.conv(feature).view(batch, self.num_anchors, self.dim, height, width)
            per_level.append(x.permute(0, 3, 4, 1, 2).reshape(batch, -1, self.dim))
        return torch.cat(per_level, dim=1)


def _timm_blocks_last_stage(body):
    """The blocks of a timm `blocks` model (MobileNetV2, EfficientNet) between its last two feature
    outputs, e.g. MobileNetV2 blocks 5-6 (C4 96 channels -> C5 320, stride 2)."""
    module_names = [info["module"] for info in body.feature_info]
    if len(module_names) < 2 or not all(name.startswith("blocks.") for name in module_names[-2:]):
        return None
    start, end = (int(name.split(".")[1]) for name in module_names[-2:])
    return nn.Sequential(*body.blocks[start + 1 : end + 1])


def _bottom_up_last_stage(backbone):
    """The last stage of the backbone under the FPN: Detectron2 ResNet `res5`, timm `stages[-1]`
    (ConvNeXt, Swin) or the C4 -> C5 blocks of a timm `blocks` model (MobileNetV2)."""
    bottom_up = getattr(backbone, "bottom_up", backbone)
    if hasattr(bottom_up, "res5"):
        return bottom_up.res5
    body = getattr(bottom_up, "body", None)
    if body is not None and hasattr(body, "stages"):
        return body.stages[-1]
    stage = _timm_blocks_last_stage(body) if body is not None and hasattr(body, "blocks") else None
    if stage is not None:
        return stage
    raise ValueError(
        f"PS.SPNET.BOX_EMBEDDER.HEAD='last_stage' cannot find the last stage of {type(bottom_up).__name__} "
        "(expected a Detectron2 ResNet `res5`, a timm model with `stages` or `blocks`); use HEAD 'conv'."
    )


def _conv_head(in_channels, conv_dim):
    """Two stride-2 3x3 conv + ReLU layers: [N, C, 14, 14] -> [N, conv_dim, 4, 4]."""
    return nn.Sequential(
        nn.Conv2d(in_channels, conv_dim, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(conv_dim, conv_dim, 3, stride=2, padding=1), nn.ReLU(inplace=True),
    )


def backbone_tensor_names(backbone, stage):
    """{key in `stage`'s state dict: key of the same tensor in `backbone`'s state dict}."""
    names = {id(t): name for name, t in backbone.state_dict(keep_vars=True).items()}
    return {key: names[id(t)] for key, t in stage.state_dict(keep_vars=True).items()}


def build_box_head(kind, backbone, in_channels, conv_dim, resolution):
    """The conv head on RoI features: ("last_stage" | "conv") -> (module, output channels, source).

    source: {head state-dict key: backbone state-dict key it was copied from} ({} for "conv"), so that
    weights loaded into the backbone later (MODEL.WEIGHTS) can be copied into the head as well.
    """
    source = {}
    if kind == "last_stage":
        stage = _bottom_up_last_stage(backbone)
        source = backbone_tensor_names(backbone, stage)
        head = copy.deepcopy(stage)
    elif kind == "conv":
        head = _conv_head(in_channels, conv_dim)
    else:
        raise ValueError(f"PS.SPNET.BOX_EMBEDDER.HEAD={kind!r}: use 'last_stage' or 'conv'")
    was_training = head.training
    head.eval()
    try:
        with torch.no_grad():
            out_channels = head(torch.zeros(1, in_channels, resolution, resolution)).shape[1]
    except RuntimeError as e:
        raise ValueError(
            f"Box Embedder head '{kind}' does not accept {in_channels}-channel RoI features: {e}. With "
            "HEAD 'last_stage' set MODEL.FPN.OUT_CHANNELS to the backbone's C4 width (384 ConvNeXt-T, "
            "512 ConvNeXt-B, 1024 ResNet-50, 96 MobileNetV2)."
        ) from e
    head.train(was_training)
    return head, out_channels, source


class BoxEmbedder(nn.Module):
    """Box embeddings from RoIAlign on one FPN map, a conv head and max-pooling.

    Re-id form (`split_projection=True`, Norm-Aware-Embedding style): max-pool the RoI features
    and the head output, project each to dim/2 (Linear + BatchNorm1d without affine), concatenate.
    Detection form (separate heads, x^det): max-pool of the head output, Linear without bias.
    forward: features {name: [B, C, H, W]}, boxes list of B Boxes/[N_i, 4] tensors -> [sum N_i, dim]
    (not L2-normalised). `checkpoint_chunk`: see `_pooled_head`. `head_source` {head key: backbone key}: where the head's tensors come from
    in the backbone (copied stage; checkpoint.py refills them when the backbone's weights load).
    """

    def __init__(self, *, in_feature, stride, pooler_resolution, sampling_ratio, head, in_channels,
                 head_channels, dim, split_projection, head_source=None, checkpoint_chunk=0):
        super().__init__()
        self.head_source = dict(head_source or {})
        self.checkpoint_chunk = checkpoint_chunk
        self.in_feature = in_feature
        self.dim = dim
        self.pooler = ROIPooler(
            output_size=pooler_resolution, scales=(1.0 / stride,), sampling_ratio=sampling_ratio,
            pooler_type="ROIAlign",
        )
        self.head = head
        self.split_projection = split_projection
        if split_projection:
            if dim % 2:
                raise ValueError(f"PS.REID.EMBED_DIM must be even for SPNet (two halves), got {dim}")
            self.input_projection = self._projection(in_channels, dim // 2, bias=True)
            self.output_projection = self._projection(head_channels, dim // 2, bias=True)
            self.input_norm = nn.BatchNorm1d(dim // 2, affine=False)
            self.output_norm = nn.BatchNorm1d(dim // 2, affine=False)
        else:
            self.output_projection = self._projection(head_channels, dim, bias=False)

    def _pooled_head(self, rois):
        """Max-pooled head output [N, C_head] of RoI features [N, C, R, R]. With `checkpoint_chunk` > 0
        in training, the head runs on chunks of that many RoIs under activation checkpointing: only
        the pooled outputs are kept and each chunk is recomputed in backward (same gradients)."""
        if not (self.checkpoint_chunk > 0 and self.training and rois.requires_grad):
            return self.head(rois).amax(dim=(2, 3))
        return torch.cat([
            checkpoint(lambda x: self.head(x).amax(dim=(2, 3)), chunk, use_reentrant=False)
            for chunk in rois.split(self.checkpoint_chunk)
        ])

    @staticmethod
    def _projection(in_channels, out_channels, bias):
        linear = nn.Linear(in_channels, out_channels, bias=bias)
        nn.init.normal_(linear.weight, std=0.01)
        if bias:
            nn.init.zeros_(linear.bias)
        return linear

    def forward(self, features, boxes):
        rois = self.pooler([features[self.in_feature]], [_as_boxes(b) for b in boxes])
        pooled_out = self._pooled_head(rois)
        if not self.split_projection:
            return self.output_projection(pooled_out)
        pooled_in = rois.amax(dim=(2, 3))
        halves = [
            _batch_norm(self.input_norm, self.input_projection(pooled_in)),
            _batch_norm(self.output_norm, self.output_projection(pooled_out)),
        ]
        return torch.cat(halves, dim=1)


def _as_boxes(boxes):
    return boxes if isinstance(boxes, Boxes) else Boxes(boxes)


def build_box_embedder(cfg, backbone, dim, split_projection):
    """A Box Embedder on cfg.PS.SPNET.BOX_EMBEDDER.IN_FEATURE with its own copy of the head."""
    node = cfg.PS.SPNET.BOX_EMBEDDER
    shape = backbone.output_shape()
    if node.IN_FEATURE not in shape:
        raise ValueError(
            f"PS.SPNET.BOX_EMBEDDER.IN_FEATURE={node.IN_FEATURE!r} is not a backbone output {sorted(shape)}"
        )
    in_channels = shape[node.IN_FEATURE].channels
    head, head_channels, source = build_box_head(node.HEAD, backbone, in_channels, node.CONV_DIM,
                                                 node.POOLER_RESOLUTION)
    return BoxEmbedder(
        in_feature=node.IN_FEATURE, stride=shape[node.IN_FEATURE].stride,
        pooler_resolution=node.POOLER_RESOLUTION, sampling_ratio=node.POOLER_SAMPLING_RATIO, head=head,
        in_channels=in_channels, head_channels=head_channels, dim=dim, split_projection=split_projection,
        head_source=source, checkpoint_chunk=node.CHECKPOINT_CHUNK,
    )
