"""The SP (Swap Path) Block: offset embeddings x_o from anchor embeddings x_a (Sec. 3.1, Fig. 4)."""
from torch import nn

MODES = ("qc", "oc")


class SwapPathBlock(nn.Module):
    """QC pathway (Offset Layer): x_o = x_q - x_a.  OC pathway (Bridge Layer): x_o = g_phi(x_a) - x_a.

    g_phi(x_a) = W x_a + b is the pseudo-query; phi = {W, b} (`bridge.weight`, `bridge.bias`)
    exists only in OC mode and is the only difference between the modes, so every other weight
    of a QC model loads into an OC model and back. With `bridge_init="zeros"` (authors' code)
    x_o = -x_a at the start of training.
    """

    def __init__(self, dim, mode="oc", bridge_init="zeros"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"PS.SPNET.MODE={mode!r}: use 'qc' or 'oc'")
        self.mode = mode
        self.dim = dim
        self.bridge = nn.Linear(dim, dim) if mode == "oc" else None
        if self.bridge is not None and bridge_init == "zeros":
            nn.init.zeros_(self.bridge.weight)
            nn.init.zeros_(self.bridge.bias)
        elif self.bridge is not None and bridge_init != "default":
            raise ValueError(f"PS.SPNET.BRIDGE_INIT={bridge_init!r}: use 'zeros' or 'default'")

    def forward(self, anchor_embeddings, query_embeddings=None):
        """x_a [..., d] (and x_q broadcastable to it, QC) -> x_o [..., d]."""
        if self.mode == "qc":
            if query_embeddings is None:
                raise ValueError("SwapPathBlock in QC mode needs query embeddings x_q")
            return query_embeddings - anchor_embeddings
        return self.bridge(anchor_embeddings) - anchor_embeddings

    def pairwise_offset_norms(self, anchor_embeddings, query_embeddings):
        """QC: ||x_q - x_a|| for every (query, anchor): x_a [A, d], x_q [P, d] -> [P, A].

        Uses ||x_q||^2 - 2 x_q.x_a + ||x_a||^2, so the [P, A, d] offsets are never materialised.
        """
        squared = (
            query_embeddings.pow(2).sum(1)[:, None]
            - 2.0 * query_embeddings @ anchor_embeddings.t()
            + anchor_embeddings.pow(2).sum(1)[None, :]
        )
        return squared.clamp(min=1e-12).sqrt()
