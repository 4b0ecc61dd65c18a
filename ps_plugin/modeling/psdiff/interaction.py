"""Collaborative interaction of the CDL (paper Fig. 3): F_d and F_r -> F_c [N, 2C].

- self-attention over the detection features F_d (intra-level relations);
- dynamic convolution on F_d with kernels produced by a linear layer on F_r;
- cross-attention with F_r as queries and F_d as keys / values;
- concatenation of the two enhanced features into F_c.
Each module can be switched off (Table IV b): the branch then passes its input through a plain
projection, so F_c keeps its 2C channels.
"""
import torch
from torch import nn

_SELF_ATTENTION_AXES = ("boxes", "tokens")


def attend(attention, query, key_value):
    """nn.MultiheadAttention output only. need_weights=True selects the explicit softmax path: the
    fused CPU flash-attention backward of torch 2.x returned NaN gradients here after a few AdamW steps."""
    return attention(query, key_value, key_value, need_weights=True)[0]


class DetectionSelfAttention(nn.Module):
    """Multi-head self-attention on F_d [B·N, S·S, C], residual + LayerNorm.

    over="boxes": attention among the N boxes of an image on their mean RoI feature, the result added
    to every RoI position (Sparse R-CNN / DiffusionDet relation modelling); over="tokens": attention
    among the S·S positions of each RoI.
    """

    def __init__(self, dim, num_heads, dropout, over="boxes"):
        super().__init__()
        if over not in _SELF_ATTENTION_AXES:
            raise ValueError(f"cfg.PS.PSDIFF.SELF_ATTENTION_OVER={over!r}: use one of {_SELF_ATTENTION_AXES}")
        self.over = over
        self.attention = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, det_features, num_images):
        if self.over == "tokens":
            update = attend(self.attention, det_features, det_features)
            return self.norm(det_features + update)
        per_box = det_features.mean(dim=1).view(num_images, -1, det_features.shape[-1])
        update = attend(self.attention, per_box, per_box)
        return self.norm(det_features + update.reshape(-1, 1, det_features.shape[-1]))


class DynamicConv(nn.Module):
    """F_d [B·N, S·S, C] convolved (1×1, two layers) with kernels from Linear(F_r [B·N, C]) -> [B·N, C]."""

    def __init__(self, dim, dynamic_dim, pooler_resolution):
        super().__init__()
        self.dim, self.dynamic_dim = dim, dynamic_dim
        self.kernel_generator = nn.Linear(dim, 2 * dim * dynamic_dim)
        self.norm1 = nn.LayerNorm(dynamic_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.output = RoIFlatten(dim, pooler_resolution)

    def forward(self, det_features, reid_features):
        params = self.kernel_generator(reid_features)
        kernel1 = params[:, : self.dim * self.dynamic_dim].view(-1, self.dim, self.dynamic_dim)
        kernel2 = params[:, self.dim * self.dynamic_dim :].view(-1, self.dynamic_dim, self.dim)
        x = self.norm1(det_features.bmm(kernel1)).relu()
        x = self.norm2(x.bmm(kernel2)).relu()
        return self.output(x)


class RoIFlatten(nn.Module):
    """[B·N, S·S, C] -> Linear(S·S·C -> C) + LayerNorm + ReLU -> [B·N, C]."""

    def __init__(self, dim, pooler_resolution):
        super().__init__()
        self.linear = nn.Linear(dim * pooler_resolution**2, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, det_features):
        return self.norm(self.linear(det_features.flatten(1))).relu()


class ReidCrossAttention(nn.Module):
    """Queries F_r [B·N, C] (one token per box) attend to keys / values F_d [B·N, S·S, C]; residual + LN."""

    def __init__(self, dim, num_heads, dropout):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, reid_features, det_features):
        query = reid_features.unsqueeze(1)
        update = attend(self.attention, query, det_features)
        return self.norm(reid_features + update.squeeze(1))


class CollaborativeInteraction(nn.Module):
    """(F_d [B·N, S·S, C], F_r [B·N, C]) -> F_c [B·N, 2C] = [dynconv(SA(F_d); F_r) ‖ CA(F_r; SA(F_d))]."""

    def __init__(
        self,
        dim,
        num_heads,
        dynamic_dim,
        pooler_resolution,
        dropout=0.0,
        use_self_attention=True,
        use_dynamic_conv=True,
        use_cross_attention=True,
        self_attention_over="boxes",
    ):
        super().__init__()
        self.self_attention = (
            DetectionSelfAttention(dim, num_heads, dropout, self_attention_over) if use_self_attention else None
        )
        self.dynamic_conv = DynamicConv(dim, dynamic_dim, pooler_resolution) if use_dynamic_conv else None
        self.flatten = None if use_dynamic_conv else RoIFlatten(dim, pooler_resolution)
        self.cross_attention = ReidCrossAttention(dim, num_heads, dropout) if use_cross_attention else None

    def forward(self, det_features, reid_features, num_images):
        if self.self_attention is not None:
            det_features = self.self_attention(det_features, num_images)
        if self.dynamic_conv is not None:
            det_out = self.dynamic_conv(det_features, reid_features)
        else:
            det_out = self.flatten(det_features)
        reid_out = reid_features
        if self.cross_attention is not None:
            reid_out = self.cross_attention(reid_features, det_features)
        return torch.cat([det_out, reid_out], dim=-1)
