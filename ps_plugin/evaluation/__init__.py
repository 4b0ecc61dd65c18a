"""Person-search evaluation: vectorised protocols (pure numpy), the Detectron2 evaluator, plots."""
from .cbgm import cbgm_rescore, query_context
from .detection_metrics import evaluate_detection
from .evaluator import PersonSearchEvaluator
from .gallery_results import GalleryResults, l2_normalize
from .inference_dicts import build_person_search_test_dicts
from .iou import paired_iou, pairwise_iou, search_iou_threshold
from .protocols import SearchEvaluation, evaluate_conditioned_search, evaluate_search
from .query_centric import is_query_conditioned, query_centric_inference
from .results_io import load_results, queries_for_protocol, save_results
from .search_inputs import GalleryTruth, SearchQuery, query_from_record
from .search_metrics import cmc_curve, ranking_metrics, summarize

__all__ = [
    "GalleryResults",
    "GalleryTruth",
    "PersonSearchEvaluator",
    "SearchEvaluation",
    "SearchQuery",
    "build_person_search_test_dicts",
    "cbgm_rescore",
    "cmc_curve",
    "evaluate_conditioned_search",
    "evaluate_detection",
    "evaluate_search",
    "is_query_conditioned",
    "l2_normalize",
    "load_results",
    "paired_iou",
    "pairwise_iou",
    "queries_for_protocol",
    "query_centric_inference",
    "query_context",
    "query_from_record",
    "ranking_metrics",
    "save_results",
    "search_iou_threshold",
    "summarize",
]
