"""Ignore regions (CrowdHuman's crowds and reflections: docs/DATA_RECORDS.md) in Faster R-CNN training.

A region marks pixels whose people are not annotated one by one: an anchor or proposal lying in it
and matched to no annotated person is neither a positive nor a negative (label -1, never sampled).
"Lying in" is IoA = |box ∩ region| / |box| > threshold, the box's largest over the regions, as
Detectron's (Caffe2) TRAIN.CROWD_FILTER_THRESH (0.7) measures COCO crowd regions
(PS.DATA.IGNORE_IOA_THRESH).

- `ignore_boxes_of`: the inputs' IGNORE_BOXES as Boxes, or None when no input has one.
- `inside_ignore_regions`: bool [R], IoA > threshold.
- `ignore_unmatched`: RPN labels {1, 0, -1} -> negatives inside a region become -1.
- `drop_ignored_proposals`: ROI proposals not matched to a person and inside a region are removed
  before Detectron2's label_and_sample_proposals samples them (the same as labelling them -1).
"""
import torch
from detectron2.structures import Boxes, pairwise_ioa, pairwise_iou

from ps_plugin.structures import IGNORE_BOXES

__all__ = ["drop_ignored_proposals", "ignore_boxes_of", "ignore_unmatched", "inside_ignore_regions"]


def ignore_boxes_of(inputs, device):
    """list of B Boxes [M_b, 4] (input image; M_b = 0 for an input without IGNORE_BOXES), or None when
    no input carries a region (the training of every other dataset stays Detectron2's)."""
    if not any(len(x.get(IGNORE_BOXES, ())) for x in inputs):
        return None
    return [Boxes(torch.as_tensor(x.get(IGNORE_BOXES, torch.zeros(0, 4)), dtype=torch.float32, device=device).reshape(-1, 4))
            for x in inputs]


def inside_ignore_regions(boxes, regions, threshold):
    """boxes Boxes [R], regions Boxes [M] -> bool [R]: max_m |box ∩ region_m| / |box| > threshold
    (all False for M = 0; a zero-area box has IoA 0)."""
    if len(regions) == 0:
        return torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    return pairwise_ioa(regions, boxes).max(dim=0).values > threshold


def ignore_unmatched(labels, boxes, regions, threshold):
    """labels int [R] in {1 positive, 0 negative, -1 ignore} of `boxes` Boxes [R] -> a copy where the
    negatives inside a region (inside_ignore_regions) are -1."""
    labels = labels.clone()
    labels[(labels == 0) & inside_ignore_regions(boxes, regions, threshold)] = -1
    return labels


def drop_ignored_proposals(proposals, targets, regions, matcher, threshold):
    """proposals: list of B Instances (proposal_boxes); targets: list of B Instances (gt_boxes); regions:
    list of B Boxes; matcher: the ROI heads' proposal_matcher (label 1 = matched to a person) ->
    proposals without those that are not matched to a person (matcher label <= 0) and lie inside a
    region. Images without regions keep every proposal (the same Instances)."""
    kept = []
    for proposals_i, targets_i, regions_i in zip(proposals, targets, regions):
        if len(regions_i) == 0:
            kept.append(proposals_i)
            continue
        _, labels = matcher(pairwise_iou(targets_i.gt_boxes, proposals_i.proposal_boxes))
        inside = inside_ignore_regions(proposals_i.proposal_boxes, regions_i, threshold)
        kept.append(proposals_i[(labels > 0) | ~inside])
    return kept
