"""The model contract: the keys of the dicts every ps_plugin meta-architecture reads and returns, and
the protocol of query-conditioned search. It imports nothing from ps_plugin, so data/, evaluation/,
search/ and tools use it without importing a method.

Coordinate frames: the *input image* is the "image" tensor the model receives (after the mapper's
augmentation and resize); the *original image* is the record's "height" x "width". Boxes are XYXY
in pixels. D is the method's re-id embedding size.

Input dict, one image (PersonSearchDatasetMapper; dataset records: docs/DATA_RECORDS.md). Besides
Detectron2's keys ("image" uint8 [C, H, W] in INPUT.FORMAT, "height"/"width" of the original image,
"instances" with gt_boxes [N, 4] in the input image, gt_classes, gt_pids, gt_box_ids):

- QUERY_BOXES: float32 [K, 4], input image. Test mode, query records only: the query box(es); row 0
  is the protocol's query box.
- GT_BOXES_FOR_REID: float32 [M, 4], input image. Test mode, gallery records (PS.EVAL.GT_MAP): every
  annotation's box, in annotation order; a box the transform made degenerate keeps its row.
- IGNORE_BOXES: float32 [M, 4], input image. Training, records with "ignore_regions" (CrowdHuman),
  PS.DATA.IGNORE_REGIONS: the regions (clipped, empty ones dropped) whose unmatched anchors and
  proposals are neither positives nor negatives (modeling/common/ignore_regions.py).
- VIEWS: training with PS.INPUT.NUM_VIEWS = k > 1: a list of k single-view input dicts of one image
  (the record's other keys sit beside it, "annotations" removed).

Output dict, eval mode, one per input, in input order:

- query input (has QUERY_BOXES) -> QUERY_EMBEDDINGS: [K, D], L2-normalised, row k = query box k.
- gallery input -> "instances": Instances of the original image with pred_boxes [N, 4] (original
  image), scores [N], pred_classes [N], pred_embeddings [N, D] L2-normalised; with
  GT_BOXES_FOR_REID also GT_EMBEDDINGS: [M, D], L2-normalised, row m = box m (the GT mAP input).

A model whose gallery detections depend on the query cannot answer a gallery input alone: it
implements QueryConditionedSearch instead, and evaluation.query_centric_inference drives it.
"""
from abc import ABC, abstractmethod
from typing import List, Optional, Tuple

import torch
from detectron2.structures import Instances

__all__ = [
    "GT_BOXES_FOR_REID",
    "GT_EMBEDDINGS",
    "IGNORE_BOXES",
    "QUERY_BOXES",
    "QUERY_EMBEDDINGS",
    "VIEWS",
    "QueryConditionedSearch",
    "missing_query_conditioned_members",
]

QUERY_BOXES = "query_boxes"
GT_BOXES_FOR_REID = "gt_boxes_for_reid"
IGNORE_BOXES = "ignore_boxes"
VIEWS = "views"
QUERY_EMBEDDINGS = "query_embeddings"
GT_EMBEDDINGS = "gt_embeddings"


class QueryConditionedSearch(ABC):
    """Query-conditioned search (SPNet QC mode, supplementary Sec. 9.1): gallery detections depend on
    the query, so each query is encoded once and each gallery image is searched for many queries.

    A model declares it by subclassing; evaluation checks for the members by name
    (`missing_query_conditioned_members`), so a DDP-unwrapped model or a test double that has them
    is accepted too. Both methods take mapped input dicts (module docstring) and run without grad.
    """

    @property
    @abstractmethod
    def query_conditioned(self) -> bool:
        """True when gallery detections depend on the query: the model must be evaluated with
        evaluation.query_centric_inference. False: forward() answers gallery inputs too, and
        detect_for_queries returns the same detections for every query."""

    @abstractmethod
    def encode_queries(self, query_input: dict) -> Tuple[torch.Tensor, torch.Tensor]:
        """One query input ("image", QUERY_BOXES [K, 4]) -> (re-id embeddings [K, D], L2-normalised,
        row 0 = the query box; detection queries [K, ...], the model's own encoding of each box that
        detect_for_queries takes back, stacked)."""

    @abstractmethod
    def detect_for_queries(
        self, gallery_input: dict, detection_queries: torch.Tensor
    ) -> Tuple[List[Instances], Optional[torch.Tensor]]:
        """One gallery input ("image", "height", "width", optional GT_BOXES_FOR_REID [M, 4]) and
        detection queries [Q, ...] (rows of encode_queries' second output) -> (Q Instances in original
        image coordinates, as a gallery output's "instances": the detections for query q; GT_EMBEDDINGS
        [M, D] of GT_BOXES_FOR_REID, or None when the input has none)."""


def missing_query_conditioned_members(model) -> List[str]:
    """Sorted names of the QueryConditionedSearch members `model` lacks; empty when it has them all."""
    return sorted(name for name in QueryConditionedSearch.__abstractmethods__ if not hasattr(model, name))
