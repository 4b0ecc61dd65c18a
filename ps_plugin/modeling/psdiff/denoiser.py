"""f_θ2((b_t, e_t), c, t) of eq. 12: timestep embedding + NUM_STAGES stacked CDL stages."""
import copy

import torch.nn.functional as F
from detectron2.config import configurable
from torch import nn

from .cdl import CollaborativeDenoisingLayer
from .time_embedding import TimestepEmbedding


class PSDiffDenoiser(nn.Module):
    """Stacked CDL stages with separate weights; stage k+1 starts from stage k's (detached) boxes and
    its Norm(ê0) as F_r. The paper uses one stage; DiffusionDet stacks six. Xavier init (paper V-A.3).
    """

    @configurable
    def __init__(self, *, stage, num_stages, hidden_dim):
        super().__init__()
        self.time_embedding = TimestepEmbedding(hidden_dim)
        self.stages = nn.ModuleList([copy.deepcopy(stage) for _ in range(num_stages)])
        self._reset_parameters()

    @classmethod
    def from_config(cls, cfg, input_shape):
        if cfg.PS.PSDIFF.NUM_STAGES < 1:
            raise ValueError(f"cfg.PS.PSDIFF.NUM_STAGES={cfg.PS.PSDIFF.NUM_STAGES}: use 1 (paper) or more")
        return {
            "stage": CollaborativeDenoisingLayer(cfg, input_shape),
            "num_stages": cfg.PS.PSDIFF.NUM_STAGES,
            "hidden_dim": cfg.PS.PSDIFF.HIDDEN_DIM,
        }

    def _reset_parameters(self):
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)
        for stage in self.stages:
            stage.predictor.detection_head.reset_bias()

    def forward(self, features, boxes, reid_features, timesteps):
        """
        Args:
            features: list of FPN maps [B, C, H_l, W_l].
            boxes: noisy boxes, absolute XYXY [B, N, 4].
            reid_features: F_r [B, N, D] (Norm of the noisy embeddings).
            timesteps: int64 [B].
        Returns:
            list (one per stage) of dicts "pred_logits" [B, N, 1], "pred_boxes" [B, N, 4], "pred_embeddings" [B, N, D].
        """
        time_embedding = self.time_embedding(timesteps)
        outputs = []
        for stage in self.stages:
            out = stage(features, boxes, reid_features, time_embedding)
            outputs.append(out)
            boxes = out["pred_boxes"].detach()
            reid_features = F.normalize(out["pred_embeddings"], dim=-1)
        return outputs
