"""Prediction heads of the CDL: cascaded (paper Sec. IV-B.3b) or parallel (Table IV c)."""
import math

from torch import nn

_PREDICTION_MODES = ("cascaded", "parallel")


def _mlp(in_dim, dim, num_layers):
    """num_layers × (Linear, LayerNorm, ReLU); the first takes `in_dim`."""
    layers = []
    for i in range(num_layers):
        layers += [nn.Linear(in_dim if i == 0 else dim, dim), nn.LayerNorm(dim), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class EmbeddingHead(nn.Module):
    """F_c [B·N, 2C] -> ê0 [B·N, D] (raw; L2-normalised only for search)."""

    def __init__(self, in_dim, dim, embed_dim):
        super().__init__()
        self.hidden = _mlp(in_dim, dim, 1)
        self.output = nn.Linear(dim, embed_dim)

    def forward(self, fused):
        return self.output(self.hidden(fused))


class DetectionHead(nn.Module):
    """F_o [B·N, in_dim] -> (class logits [B·N, 1], box deltas [B·N, 4])."""

    def __init__(self, in_dim, dim, num_cls_layers, num_reg_layers, prior_prob):
        super().__init__()
        self.cls_tower = _mlp(in_dim, dim, num_cls_layers)
        self.reg_tower = _mlp(in_dim, dim, num_reg_layers)
        self.cls_logits = nn.Linear(dim if num_cls_layers else in_dim, 1)
        self.bbox_deltas = nn.Linear(dim if num_reg_layers else in_dim, 4)
        self.prior_bias = -math.log((1 - prior_prob) / prior_prob)

    def reset_bias(self):
        """Focal-loss prior on the class bias (call after a global Xavier init)."""
        nn.init.constant_(self.cls_logits.bias, self.prior_bias)

    def forward(self, object_features):
        return self.cls_logits(self.cls_tower(object_features)), self.bbox_deltas(self.reg_tower(object_features))


class PSDiffPredictor(nn.Module):
    """F_c [B·N, 2C] -> (logits [B·N, 1], deltas [B·N, 4], ê0 [B·N, D]).

    cascaded: ê0 = EmbeddingHead(F_c), then F_o = ê0 feeds the detection head (paper).
    parallel: embedding and detection heads both read F_c.
    """

    def __init__(self, dim, embed_dim, num_cls_layers, num_reg_layers, prior_prob, mode="cascaded"):
        super().__init__()
        if mode not in _PREDICTION_MODES:
            raise ValueError(f"cfg.PS.PSDIFF.PREDICTION={mode!r}: use one of {_PREDICTION_MODES}")
        self.mode = mode
        self.embedding_head = EmbeddingHead(2 * dim, dim, embed_dim)
        det_in = embed_dim if mode == "cascaded" else 2 * dim
        self.detection_head = DetectionHead(det_in, dim, num_cls_layers, num_reg_layers, prior_prob)

    def forward(self, fused):
        embeddings = self.embedding_head(fused)
        object_features = embeddings if self.mode == "cascaded" else fused
        logits, deltas = self.detection_head(object_features)
        return logits, deltas, embeddings


def stack_stage_outputs(logits, boxes, embeddings, num_images):
    """Reshape flat [B·N, k] stage outputs into a dict of [B, N, k] tensors."""
    return {
        "pred_logits": logits.view(num_images, -1, logits.shape[-1]),
        "pred_boxes": boxes.view(num_images, -1, 4),
        "pred_embeddings": embeddings.view(num_images, -1, embeddings.shape[-1]),
    }

