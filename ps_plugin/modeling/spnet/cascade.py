"""The Cascade Loop: T + 1 box-prediction stages with independent weights (Sec. 3.1, Fig. 3)."""
from torch import nn

from .box_detector import BoxDetector
from .embedders import build_box_embedder
from .swap_path import SwapPathBlock


class CascadeStage(nn.Module):
    """One stage t: SP Block_t, Box Detector_t and (optionally) its own detection Box Embedder_t.

    `box_embedder` is None when the stage uses the re-id Box Embedder (shared heads: stage 0, or
    every stage with PS.SPNET.CASCADE_SHARE_BOX_EMBEDDER).
    """

    def __init__(self, sp_block, box_detector, box_embedder=None):
        super().__init__()
        self.sp_block = sp_block
        self.box_detector = box_detector
        self.box_embedder = box_embedder


class SPNetCascade(nn.Module):
    """Stages 0..T. Stage 0 refines anchors; stage t >= 1 embeds the boxes of stage t - 1 with
    its Box Embedder to get x_a^(t). No module is shared between stages, except the re-id Box
    Embedder where the config shares it (see `box_embedder`).

    State-dict keys: `stages.{t}.sp_block.bridge.*` (OC only), `stages.{t}.box_detector.*`,
    `stages.{t}.box_embedder.*` (stages with their own embedder). With separate heads, stage 0 has
    a detection Box Embedder only in QC (for x_q^det): in OC its x_a comes from the Anchor Embedder,
    and an unused module would stop DDP (no gradient) and catch plain-PT weights.
    """

    def __init__(self, stages):
        super().__init__()
        self.stages = nn.ModuleList(stages)

    @property
    def num_stages(self):
        return len(self.stages)

    def box_embedder(self, stage, reid_embedder):
        """The Box Embedder giving stage `stage` its x_a (t >= 1) and, in QC, x_q^det."""
        own = self.stages[stage].box_embedder
        return own if own is not None else reid_embedder

    @property
    def first_detection_stage(self):
        """Index of the first stage with a detection Box Embedder (separate heads), or None."""
        return next((t for t, s in enumerate(self.stages)
                     if s.box_embedder is not None and not s.box_embedder.split_projection), None)

    @classmethod
    def from_config(cls, cfg, backbone):
        node = cfg.PS.SPNET
        dim = node.EMBED_DIM
        stages = []
        for t in range(node.CASCADE_STEPS + 1):
            embedder = None
            if not node.SHARED_HEADS and (t > 0 or node.MODE == "qc"):
                embedder = build_box_embedder(cfg, backbone, dim, split_projection=False)
            elif t > 0 and not node.CASCADE_SHARE_BOX_EMBEDDER:
                embedder = build_box_embedder(cfg, backbone, dim, split_projection=True)
            stages.append(CascadeStage(SwapPathBlock(dim, node.MODE, node.BRIDGE_INIT), BoxDetector(dim), embedder))
        return cls(stages)
