"""OLA's dual memory bank enhancement (eq. 6): cross-attention between an image's instance (crop)
and proposal embeddings before they reach their memories M_I and M_P."""
import torch.nn.functional as F
from torch import nn

__all__ = ["DualMemoryEnhancement"]


class DualMemoryEnhancement(nn.Module):
    """feat_P = softmax(Q_I K_P^T / sqrt(d)) V_P,  feat_I = softmax(Q_P K_I^T / sqrt(d)) V_I  (eq. 6)

    with multi-head projections (nn.MultiheadAttention; heads are a guess). Each branch receives what
    it attended to in the other as a residual and is renormalised:
        proposals' = normalize(P + feat_I),   instances' = normalize(I + feat_P).
    forward(proposals [p, D], instances [m, D]) of one image -> (proposals' [p, D], instances' [m, D]);
    unchanged when either side is empty.
    """

    def __init__(self, dim, num_heads):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"PS.OLA.DMBE.NUM_HEADS={num_heads} must divide the embedding size {dim}")
        self.instance_queries = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.proposal_queries = nn.MultiheadAttention(dim, num_heads, batch_first=True)

    def forward(self, proposals, instances):
        if len(proposals) == 0 or len(instances) == 0:
            return proposals, instances
        feat_p, _ = self.instance_queries(instances[None], proposals[None], proposals[None], need_weights=False)
        feat_i, _ = self.proposal_queries(proposals[None], instances[None], instances[None], need_weights=False)
        return F.normalize(proposals + feat_i[0], dim=1), F.normalize(instances + feat_p[0], dim=1)
