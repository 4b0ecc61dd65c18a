"""Dual noise generator (paper Sec. IV-B.2, eq. 10): GT boxes and teacher embeddings -> (b_t, e_t)."""
import torch
import torch.nn.functional as F

from .signal_coding import embeddings_to_signal, normalized_cxcywh_to_signal

__all__ = ["DualNoiseGenerator", "random_placeholder_boxes", "fill_to_num_proposals"]

_FILL_MODES = ("repeat", "concat")


def random_placeholder_boxes(num, device=None, generator=None):
    """DiffusionDet padding boxes: normalised cxcywh [num, 4] ~ N(0.5, 1/6), w and h ≥ 1e-4."""
    boxes = torch.randn(num, 4, device=device, generator=generator) / 6.0 + 0.5
    boxes[:, 2:] = boxes[:, 2:].clamp(min=1e-4)
    return boxes


def _random_unit_embeddings(num, dim, device=None, generator=None):
    return F.normalize(torch.randn(num, dim, device=device, generator=generator), dim=-1)


def _uniform_repeat_counts(num_gt, num, device=None, generator=None):
    """Copies per GT summing to `num`: num // M each, one more for num % M GTs drawn at random."""
    counts = torch.full((num_gt,), num // num_gt, dtype=torch.long, device=device)
    extra = torch.randperm(num_gt, device=device, generator=generator)[: num % num_gt]
    counts[extra] += 1
    return counts


def fill_to_num_proposals(gt_boxes, gt_embeddings, num, mode="repeat", generator=None):
    """Bring one image's M ground truths to exactly `num` (N_train) slots.

    Args:
        gt_boxes: normalised cxcywh [M, 4]; gt_embeddings: [M, D] (any norm).
        mode: "repeat" — each GT duplicated num // M or num // M + 1 times (paper, "uniformly
            duplicated"); "concat" — each GT once, then random placeholder boxes (DiffusionDet).
            With M = 0 both give random placeholder boxes with random unit embeddings; with M > num
            a random subset of `num` GTs is kept.
    Returns:
        boxes [num, 4] normalised cxcywh, embeddings [num, D].
    """
    if mode not in _FILL_MODES:
        raise ValueError(f"cfg.PS.PSDIFF.GT_FILL={mode!r}: use one of {_FILL_MODES}")
    device, num_gt, dim = gt_boxes.device, gt_boxes.shape[0], gt_embeddings.shape[1]
    if num_gt > num:
        keep = torch.randperm(num_gt, device=device, generator=generator)[:num]
        return gt_boxes[keep], gt_embeddings[keep]
    if num_gt == 0 or mode == "concat":
        pad = num - num_gt
        boxes = torch.cat([gt_boxes, random_placeholder_boxes(pad, device, generator)])
        embeddings = torch.cat([gt_embeddings, _random_unit_embeddings(pad, dim, device, generator)])
        return boxes, embeddings
    counts = _uniform_repeat_counts(num_gt, num, device, generator)
    return gt_boxes.repeat_interleave(counts, dim=0), gt_embeddings.repeat_interleave(counts, dim=0)


class DualNoiseGenerator:
    """Eq. 10, one t per image shared by boxes and embeddings:

        b_t = s1·√ᾱ_t·(2·b0 − 1) + √(1 − ᾱ_t)·ε1,    e_t = s·√ᾱ_t·Norm(e0) + √(1 − ᾱ_t)·ε2,

    with s = `embed_scale`: s2, or s2·√D for the "sqrt_dim" reading (signal_coding.embedding_signal_scale).
    """

    def __init__(self, schedule, num_proposals, box_scale, embed_scale, fill_mode="repeat"):
        self.schedule = schedule
        self.num_proposals = num_proposals
        self.box_scale = box_scale
        self.embed_scale = embed_scale
        self.fill_mode = fill_mode

    def __call__(self, gt_boxes, gt_embeddings, generator=None, timesteps=None):
        """
        Args:
            gt_boxes: list (per image) of normalised cxcywh GT boxes [M_i, 4].
            gt_embeddings: list of teacher embeddings e0 [M_i, D].
            timesteps: optional int64 [B]; default t ~ Uniform{0..T−1} per image.
        Returns:
            dict with "timesteps" int64 [B], "boxes" b_t [B, N, 4] and "embeddings" e_t [B, N, D]
            (signal space), and the clean "boxes_start" / "embeddings_start" of the same shapes.
        """
        filled = [
            fill_to_num_proposals(b, e, self.num_proposals, self.fill_mode, generator)
            for b, e in zip(gt_boxes, gt_embeddings)
        ]
        boxes0 = normalized_cxcywh_to_signal(torch.stack([b for b, _ in filled]), self.box_scale)
        embeddings0 = embeddings_to_signal(torch.stack([e for _, e in filled]), self.embed_scale)
        t = timesteps if timesteps is not None else self.schedule.sample_timesteps(len(filled), boxes0.device, generator)
        box_noise = torch.randn(boxes0.shape, device=boxes0.device, generator=generator)
        embed_noise = torch.randn(embeddings0.shape, device=boxes0.device, generator=generator)
        return {
            "timesteps": t,
            "boxes": self.schedule.q_sample(boxes0, t, box_noise),
            "embeddings": self.schedule.q_sample(embeddings0, t, embed_noise),
            "boxes_start": boxes0,
            "embeddings_start": embeddings0,
        }
