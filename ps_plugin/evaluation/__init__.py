"""Person-search evaluation: vectorised protocols (pure numpy), the Detectron2 evaluator, plots.

Names are imported on first access: the protocols, metrics and results files need only numpy
(and scipy for CBGM), the evaluator and query-centric inference need torch and Detectron2.
"""
from ..utils.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "GalleryResults": ".gallery_results",
        "GalleryTruth": ".search_inputs",
        "ImagePseudoLabels": ".pseudo_labels",
        "PersonSearchEvaluator": ".evaluator",
        "SearchEvaluation": ".protocols",
        "SearchQuery": ".search_inputs",
        "build_person_search_test_dicts": ".inference_dicts",
        "cbgm_rescore": ".cbgm",
        "cmc_curve": ".search_metrics",
        "evaluate_conditioned_search": ".protocols",
        "evaluate_detection": ".detection_metrics",
        "evaluate_search": ".protocols",
        "identity_changes": ".pseudo_labels",
        "is_query_conditioned": ".query_centric",
        "l2_normalize": ".gallery_results",
        "load_results": ".results_io",
        "paired_iou": ".iou",
        "pairwise_iou": ".iou",
        "pseudo_label_quality": ".pseudo_labels",
        "queries_for_protocol": ".results_io",
        "query_centric_inference": ".query_centric",
        "query_context": ".cbgm",
        "query_from_record": ".search_inputs",
        "ranking_metrics": ".search_metrics",
        "save_results": ".results_io",
        "search_iou_threshold": ".iou",
        "summarize": ".search_metrics",
        "true_people": ".pseudo_labels",
    },
)
