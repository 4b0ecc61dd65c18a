"""Map boxes and embeddings to and from the diffusion signal space of eq. 10.

Boxes: absolute XYXY in the (resized) image <-> s1 · (2 · cxcywh/[W, H, W, H] − 1).
Embeddings: e <-> s · Norm(e) with s = s2 (EMBED_SIGNAL "unit") or s2·√D ("sqrt_dim"),
`embedding_signal_scale`. The signal is clamped to ±s before decoding (DiffusionDet).
"""
import math

import torch
import torch.nn.functional as F
from detectron2.structures import Boxes


def image_whwh(image_sizes, device=None):
    """[B, 4] float tensor (W, H, W, H) of each image's unpadded size; `image_sizes` is [(H, W), ...]."""
    return torch.tensor([[w, h, w, h] for h, w in image_sizes], dtype=torch.float32, device=device)


def xyxy_to_cxcywh(boxes):
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def cxcywh_to_xyxy(boxes):
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def boxes_to_signal(boxes_xyxy, whwh, scale):
    """Absolute XYXY boxes [..., N, 4] and whwh [..., 4] -> signal s1·(2·b − 1) with b normalised cxcywh."""
    normalized = xyxy_to_cxcywh(boxes_xyxy / whwh.unsqueeze(-2))
    return (normalized * 2 - 1) * scale


def normalized_cxcywh_to_signal(boxes_cxcywh, scale):
    """Normalised cxcywh boxes in [0, 1] -> s1·(2·b − 1)."""
    return (boxes_cxcywh * 2 - 1) * scale


def signal_to_boxes(signal, whwh, scale):
    """Signal [..., N, 4] -> absolute XYXY boxes [..., N, 4] (clamped to ±scale first)."""
    normalized = (signal.clamp(-scale, scale) / scale + 1) / 2
    return cxcywh_to_xyxy(normalized) * whwh.unsqueeze(-2)


_EMBED_SIGNALS = ("unit", "sqrt_dim")


def embedding_signal_scale(embed_scale, dim, reading="unit"):
    """The length s of the clean embedding signal s·Norm(e0) in eq. 10 (cfg.PS.PSDIFF.EMBED_SIGNAL).

    "unit": s = s2, Norm = L2 over the D elements, so each element carries about s2/√D (0.19 for
    s2 = 3, D = 256) against noise of variance 1. "sqrt_dim": s = s2·√D, i.e. √D·Norm(e0) has unit
    root-mean-square elements (each about ±1, like the box signal 2·b0 − 1) before the factor s2.
    """
    if reading not in _EMBED_SIGNALS:
        raise ValueError(f"cfg.PS.PSDIFF.EMBED_SIGNAL={reading!r}: use one of {_EMBED_SIGNALS}")
    return embed_scale * math.sqrt(dim) if reading == "sqrt_dim" else embed_scale


def embeddings_to_signal(embeddings, scale):
    """e [..., D] -> s · Norm(e)."""
    return F.normalize(embeddings, dim=-1) * scale


def signal_to_embeddings(signal, scale):
    """Signal [..., D] -> the re-id feature F_r = Norm(clamp(e_t, ±s)) fed to the denoiser."""
    return F.normalize(signal.clamp(-scale, scale), dim=-1)


def gt_boxes_normalized(instances):
    """Normalised cxcywh GT boxes [M, 4] of one image's Instances (image_size (H, W))."""
    h, w = instances.image_size
    boxes = instances.gt_boxes.tensor if isinstance(instances.gt_boxes, Boxes) else instances.gt_boxes
    whwh = boxes.new_tensor([w, h, w, h])
    return xyxy_to_cxcywh(boxes / whwh)
