"""Collaborative Denoising Layer (paper Sec. IV-B.3, eq. 12): one denoising stage."""
import math

from detectron2.config import configurable
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.poolers import ROIPooler
from detectron2.structures import Boxes
from torch import nn

from .interaction import CollaborativeInteraction
from .prediction import PSDiffPredictor, stack_stage_outputs

_SCALE_CLAMP = math.log(100000.0 / 16)


class CollaborativeDenoisingLayer(nn.Module):
    """(b_t, F_r, c, t) -> (class logits, b̂0, ê0) for N boxes per image.

    1. F_d [B·N, S·S, C]: RoIAlign of the FPN condition c at the noisy boxes.
    2. F_c [B·N, 2C]: collaborative interaction of F_d and F_r (Fig. 3).
    3. Timestep modulation F_c·(1 + scale) + shift, scale/shift = Linear(SiLU(time embedding)).
    4. Cascaded (or parallel) prediction; boxes are deltas on the input boxes (weights BBOX_WEIGHTS).
    """

    @configurable
    def __init__(
        self,
        *,
        pooler,
        dim,
        embed_dim,
        time_dim,
        interaction,
        predictor,
        bbox_weights=(2.0, 2.0, 1.0, 1.0),
    ):
        super().__init__()
        self.pooler = pooler
        self.dim = dim
        self.reid_input = nn.Identity() if embed_dim == dim else nn.Linear(embed_dim, dim)
        self.interaction = interaction
        self.time_modulation = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 4 * dim))
        self.predictor = predictor
        self.box_transform = Box2BoxTransform(weights=tuple(bbox_weights), scale_clamp=_SCALE_CLAMP)

    @classmethod
    def from_config(cls, cfg, input_shape):
        p = cfg.PS.PSDIFF
        dim = p.HIDDEN_DIM
        channels = {input_shape[f].channels for f in p.IN_FEATURES}
        if channels != {dim}:
            raise ValueError(
                f"PS.PSDIFF.HIDDEN_DIM={dim} must equal the channels of PS.PSDIFF.IN_FEATURES {list(p.IN_FEATURES)} "
                f"({sorted(channels)}): set it to MODEL.FPN.OUT_CHANNELS."
            )
        return {
            "pooler": ROIPooler(
                output_size=p.POOLER_RESOLUTION,
                scales=tuple(1.0 / input_shape[f].stride for f in p.IN_FEATURES),
                sampling_ratio=p.POOLER_SAMPLING_RATIO,
                pooler_type=p.POOLER_TYPE,
            ),
            "dim": dim,
            "embed_dim": cfg.PS.REID.EMBED_DIM,
            "time_dim": 4 * dim,
            "interaction": CollaborativeInteraction(
                dim,
                p.NUM_ATTENTION_HEADS,
                p.DYNAMIC_DIM,
                p.POOLER_RESOLUTION,
                dropout=p.DROPOUT,
                use_self_attention=p.USE_SELF_ATTENTION,
                use_dynamic_conv=p.USE_DYNAMIC_CONV,
                use_cross_attention=p.USE_CROSS_ATTENTION,
                self_attention_over=p.SELF_ATTENTION_OVER,
            ),
            "predictor": PSDiffPredictor(
                dim, cfg.PS.REID.EMBED_DIM, p.NUM_CLS_LAYERS, p.NUM_REG_LAYERS, p.PRIOR_PROB, mode=p.PREDICTION
            ),
            "bbox_weights": p.BBOX_WEIGHTS,
        }

    def forward(self, features, boxes, reid_features, time_embedding):
        """
        Args:
            features: list of FPN maps [B, C, H_l, W_l] (cfg.PS.PSDIFF.IN_FEATURES order).
            boxes: absolute XYXY [B, N, 4] in the input image.
            reid_features: F_r [B, N, D], L2-normalised embeddings.
            time_embedding: [B, time_dim].
        Returns:
            dict of "pred_logits" [B, N, 1], "pred_boxes" [B, N, 4] (XYXY), "pred_embeddings" [B, N, D].
        """
        rois = self.pooler(features, [Boxes(b) for b in boxes])
        return self.denoise_rois(rois, boxes, reid_features, time_embedding)

    def denoise_rois(self, rois, boxes, reid_features, time_embedding):
        """Steps 2-4 on pooled features: rois [B·N, C, S, S] (image-major), the rest as in forward."""
        num_images, num_boxes = boxes.shape[:2]
        det_features = rois.flatten(2).transpose(1, 2)
        reid = self.reid_input(reid_features.reshape(num_images * num_boxes, -1))
        fused = self.interaction(det_features, reid, num_images)
        scale, shift = self.time_modulation(time_embedding).repeat_interleave(num_boxes, dim=0).chunk(2, dim=-1)
        fused = fused * (scale + 1) + shift
        logits, deltas, embeddings = self.predictor(fused)
        pred_boxes = self.box_transform.apply_deltas(deltas, boxes.reshape(-1, 4))
        return stack_stage_outputs(logits, pred_boxes, embeddings, num_images)
