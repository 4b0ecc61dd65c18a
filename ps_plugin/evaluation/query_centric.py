"""Evaluation of query-conditioned detectors (ps_plugin.structures.QueryConditionedSearch, e.g. SPNet
in QC mode, supplementary Sec. 9.1): a gallery pass per query, fed to
PersonSearchEvaluator.process_conditioned."""
import datetime
import logging
import time

import torch
from detectron2.data import DatasetCatalog
from detectron2.evaluation.evaluator import inference_context
from detectron2.utils import comm
from detectron2.utils.logger import log_every_n_seconds

from ps_plugin.structures import QUERY_EMBEDDINGS, missing_query_conditioned_members

logger = logging.getLogger(__name__)


def is_query_conditioned(model):
    """True when the (possibly DDP-wrapped) model's gallery detections depend on the query
    (`query_conditioned` is True); TypeError naming the missing methods when it claims so without
    implementing QueryConditionedSearch."""
    module = getattr(model, "module", model)
    if not getattr(module, "query_conditioned", False):
        return False
    query_conditioned_search(model)
    return True


def query_conditioned_search(model):
    """The (possibly DDP-wrapped) model as a QueryConditionedSearch; TypeError naming what it lacks."""
    module = getattr(model, "module", model)
    missing = missing_query_conditioned_members(module)
    if missing:
        raise TypeError(
            f"{type(module).__name__} cannot run query-centric search: it lacks {', '.join(missing)} of "
            "ps_plugin.structures.QueryConditionedSearch. Implement them (SPNet does); a model whose detections "
            "do not depend on the query needs none: give it query_conditioned = False (or none) and evaluate it "
            "with one pass per gallery image (inference_on_dataset)."
        )
    return module


def query_galleries(query_names):
    """{(query dataset, query_index): set of gallery image ids, or None for every gallery image}."""
    galleries = {}
    for name in query_names:
        for record in DatasetCatalog.get(name):
            gallery = record.get("gallery")
            galleries[(name, record["query_index"])] = None if gallery is None else set(gallery["image_ids"])
    return galleries


def _is_query(item):
    return "query_keys" in item or "query_index" in item


def _query_keys(item):
    return [tuple(k) for k in item.get("query_keys") or [(item["dataset_name"], item["query_index"])]]


def _encode_queries(searcher, data_loader, evaluator):
    """Pass 1: query embeddings to the evaluator; returns [(query keys, detection query [...])] of every rank."""
    encoded = []
    for batch in data_loader:
        for item in filter(_is_query, batch):
            reid, detection_queries = searcher.encode_queries(item)
            evaluator.process([item], [{QUERY_EMBEDDINGS: reid}])
            encoded.append((_query_keys(item), detection_queries[0].cpu()))
    return [entry for part in comm.all_gather(encoded) for entry in part]


def _searched_queries(image_id, queries, galleries):
    """Indices of the queries whose gallery (of any of their keys) holds `image_id`."""
    return [
        i for i, (keys, _) in enumerate(queries)
        if any(galleries[k] is None or image_id in galleries[k] for k in keys)
    ]


def query_centric_inference(model, data_loader, evaluator):
    """`inference_on_dataset` for a query-conditioned model.

    The (possibly DDP-wrapped) model implements ps_plugin.structures.QueryConditionedSearch:
    `encode_queries(query_input)` -> (query embeddings [K, D], detection queries [K, ...]; row 0 is
    the query box) and `detect_for_queries(gallery_input, detection_queries [Q, ...])` -> (Q Instances
    in original coordinates, GT_EMBEDDINGS [M, D] or None); a TypeError names any missing member.
    Pass 1 encodes every query of the loader (gathered over ranks); pass 2 runs each gallery image
    once for all the queries whose gallery holds it (CUHK-SYSU explicit galleries; every query for
    PRW and other generic galleries) into evaluator.process_conditioned (a PersonSearchEvaluator).
    Returns evaluator.evaluate().
    """
    searcher = query_conditioned_search(model)
    galleries = query_galleries(evaluator.query_names)
    evaluator.reset()
    with inference_context(model), torch.no_grad():
        queries = _encode_queries(searcher, data_loader, evaluator)
        total, start = len(data_loader), time.perf_counter()
        for index, batch in enumerate(data_loader):
            for item in batch:
                if _is_query(item):
                    continue
                chosen = _searched_queries(item["image_id"], queries, galleries)
                stacked = torch.stack([queries[i][1] for i in chosen]) if chosen else None
                detections, gt_embeddings = searcher.detect_for_queries(item, stacked) if chosen else ([], None)
                per_key = {key: found for i, found in zip(chosen, detections) for key in queries[i][0]}
                evaluator.process_conditioned(item, per_key, gt_embeddings)
            seconds = (time.perf_counter() - start) / (index + 1)
            log_every_n_seconds(
                logging.INFO,
                f"Query-centric search {index + 1}/{total} batches, {len(queries)} queries, {seconds:.2f} s/batch, "
                f"ETA={datetime.timedelta(seconds=int(seconds * (total - index - 1)))}",
                n=5,
            )
    results = evaluator.evaluate()
    return {} if results is None else results
