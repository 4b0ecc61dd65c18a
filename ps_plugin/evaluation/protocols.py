"""Person-search protocols (CUHK-SYSU explicit galleries, PRW / generic galleries), vectorised.

For every query (all queries at once, in chunks that bound memory):
  1. candidates: every detection (score >= det_thresh) of every image in the query's gallery, with
     similarity = dot product of L2-normalised embeddings;
  2. optional CBGM re-scoring (cbgm.py);
  3. positives: in each gallery image holding the query person (GT box g, w x h), the first
     detection by descending similarity whose IoU with g >= min(0.5, wh / ((w+10)(h+10))); ties in
     similarity go to the later detection (the reference's reversed argsort);
  4. AP and CMC (search_metrics.py), AP scaled by found / protocol positives.

Galleries:
  * explicit (query.gallery_image_ids, CUHK-SYSU TestG{N}): the listed images. Duplicate entries:
      "reference" (default, the field's evaluation code): the image's detections are ranked once
          (first entry, with its GT box), but every entry with a GT box counts in the number of
          protocol positives; a person listed twice can reach at most recall 1/2 on that image.
      "unique": each image counts once; it is positive when any of its entries has a GT box (the
          first such box is used).
  * generic (no explicit gallery: PRW, CUHK-SYSU full set): every gallery-truth image except the
    query's own (optionally only other cameras); positives are images holding a box with the
    query's person_id. Unlabeled persons (-1) are never positives.
Images holding the person but no detection still count as protocol positives.
"""
from dataclasses import dataclass
from itertools import chain

import numpy as np

from .cbgm import cbgm_rescore, query_context
from .gallery_results import GalleryResults, expand_ranges, l2_normalize
from .iou import paired_iou, search_iou_threshold
from .search_metrics import DEFAULT_TOPK, cmc_curve, pad_segments, ranking_metrics, summarize

DUPLICATE_RULES = ("reference", "unique")
# Candidate entries materialised at once (bounds memory of the full-set / PRW protocols).
MAX_ENTRIES_PER_CHUNK = 4_000_000


@dataclass
class CandidateLists:
    """Ranked lists of a chunk of queries, flat; entries of a query are contiguous.

    entry_query / entry_det: int64 [E] (local query index, row in GalleryResults); scores: float32 [E]
    (-inf: not in the gallery); segment_start: int64 [Q + 1].
    Positive pairs (gallery images that hold the query person): pair_query, pair_entry_start,
    pair_count int64 [P] (the image's entries are pair_entry_start + arange(pair_count)),
    pair_gt float64 [P, 4]. num_gt: int64 [Q], protocol positives per query.
    """

    entry_query: np.ndarray
    entry_det: np.ndarray
    scores: np.ndarray
    segment_start: np.ndarray
    pair_query: np.ndarray
    pair_entry_start: np.ndarray
    pair_count: np.ndarray
    pair_gt: np.ndarray
    num_gt: np.ndarray


@dataclass
class SearchEvaluation:
    """Per-query results in query order: ap float64 [Q], hit_rank float64 [Q] (inf: not found)."""

    ap: np.ndarray
    hit_rank: np.ndarray

    def summary(self, topk=DEFAULT_TOPK):
        return summarize(self.ap, self.hit_rank, topk)

    def cmc(self, max_rank=50):
        return cmc_curve(self.hit_rank, max_rank)


def mark_positives(candidates, results):
    """Bool [E]: the positive entry of every positive pair (step 3 of the module docstring)."""
    counts = candidates.pair_count
    pair_of = np.repeat(np.arange(len(counts)), counts)
    entries = expand_ranges(candidates.pair_entry_start, counts)
    dets = candidates.entry_det[entries]
    gt = candidates.pair_gt
    matches = paired_iou(results.boxes[dets], gt[pair_of]) >= search_iou_threshold(gt)[pair_of]
    order = np.lexsort((dets, candidates.scores[entries], matches, pair_of))
    last = order[np.cumsum(counts)[counts > 0] - 1]
    positive = np.zeros(len(candidates.scores), dtype=bool)
    positive[entries[last[matches[last]]]] = True
    return positive


def _fill_similarities(scores, results, query_embeddings, pair_query, pair_image, pair_entry_start):
    """scores[pair entries] = query . detections, one matrix product per gallery image."""
    order = np.argsort(pair_image, kind="stable")
    images, first = np.unique(pair_image[order], return_index=True)
    for image, pairs in zip(images, np.split(order, first[1:])):
        start, stop = results.image_offsets[image], results.image_offsets[image + 1]
        if stop > start:
            block = query_embeddings[pair_query[pairs]] @ results.embeddings[start:stop].T
            scores[pair_entry_start[pairs][:, None] + np.arange(stop - start)] = block


def explicit_candidates(results, queries, query_embeddings, duplicate_rule):
    """CandidateLists of queries with explicit galleries (see the module docstring for the rules)."""
    sizes = np.array([len(q.gallery_image_ids) for q in queries], dtype=np.int64)
    query_of = np.repeat(np.arange(len(queries)), sizes)
    images = _image_indices(results, queries, sizes)
    gt = np.concatenate([q.gallery_boxes for q in queries]) if len(queries) else np.zeros((0, 4))
    has_gt = ~np.isnan(gt).any(axis=1)
    key = query_of * len(results.image_ids) + images
    occurrence = np.arange(len(key))
    tie = ~has_gt if duplicate_rule == "unique" else np.zeros(len(key), dtype=bool)
    order = np.lexsort((occurrence, tie, key))
    first = order[np.flatnonzero(np.diff(key[order], prepend=-1) != 0)]
    counted = first[has_gt[first]] if duplicate_rule == "unique" else occurrence[has_gt]
    num_gt = np.bincount(query_of[counted], minlength=len(queries))

    pair_query, pair_image, pair_gt = query_of[first], images[first], gt[first]
    counts = results.counts[pair_image]
    pair_entry_start = np.cumsum(counts) - counts
    scores = np.full(int(counts.sum()), -np.inf, dtype=np.float32)
    _fill_similarities(scores, results, query_embeddings, pair_query, pair_image, pair_entry_start)
    positive_pair = ~np.isnan(pair_gt).any(axis=1)
    entries_per_query = np.bincount(pair_query, weights=counts, minlength=len(queries)).astype(np.int64)
    return CandidateLists(
        entry_query=np.repeat(pair_query, counts),
        entry_det=expand_ranges(results.image_offsets[pair_image], counts),
        scores=scores,
        segment_start=np.concatenate([[0], np.cumsum(entries_per_query)]),
        pair_query=pair_query[positive_pair],
        pair_entry_start=pair_entry_start[positive_pair],
        pair_count=counts[positive_pair],
        pair_gt=pair_gt[positive_pair],
        num_gt=num_gt,
    )


def generic_candidates(results, truth, queries, query_embeddings, cross_camera):
    """CandidateLists of queries searching every truth image but their own (results align with truth)."""
    num_images, num_dets = len(truth.image_ids), len(results.scores)
    own = np.array([truth.index.get(q.image_id, -1) for q in queries], dtype=np.int64)
    allowed = np.ones((len(queries), num_images), dtype=bool)
    allowed[own >= 0, own[own >= 0]] = False
    if cross_camera:
        cameras = np.array([q.camera_id for q in queries], dtype=np.int64)
        allowed &= truth.camera_ids[None, :] != cameras[:, None]
    gallery_embeddings = results.embeddings.reshape(num_dets, query_embeddings.shape[1])  # (0, D) when nothing is detected
    scores = query_embeddings @ gallery_embeddings.T
    scores[~allowed[:, results.det_image]] = -np.inf

    pair_query, pair_image, pair_gt = _person_occurrences(truth, queries)
    in_gallery = allowed[pair_query, pair_image]
    pair_query, pair_image, pair_gt = pair_query[in_gallery], pair_image[in_gallery], pair_gt[in_gallery]
    return CandidateLists(
        entry_query=np.repeat(np.arange(len(queries)), num_dets),
        entry_det=np.tile(np.arange(num_dets), len(queries)),
        scores=scores.reshape(-1),
        segment_start=np.arange(len(queries) + 1) * num_dets,
        pair_query=pair_query,
        pair_entry_start=pair_query * num_dets + results.image_offsets[pair_image],
        pair_count=results.counts[pair_image],
        pair_gt=pair_gt,
        num_gt=np.bincount(pair_query, minlength=len(queries)),
    )


def _person_occurrences(truth, queries):
    """(query, image, GT box) for every truth image holding the query's person (first box per image)."""
    labeled = np.flatnonzero(truth.ann_pids >= 0)
    by_pid = labeled[np.lexsort((labeled, truth.ann_image[labeled], truth.ann_pids[labeled]))]
    key = truth.ann_pids[by_pid] * len(truth.image_ids) + truth.ann_image[by_pid]
    by_pid = by_pid[np.diff(key, prepend=-1) != 0]
    pids = truth.ann_pids[by_pid]
    query_pids = np.array([q.person_id for q in queries], dtype=np.int64)
    lo = np.searchsorted(pids, query_pids, side="left")
    hi = np.where(query_pids >= 0, np.searchsorted(pids, query_pids, side="right"), lo)
    rows = by_pid[expand_ranges(lo, hi - lo)]
    return np.repeat(np.arange(len(queries)), hi - lo), truth.ann_image[rows], truth.ann_boxes[rows]


def _image_indices(results, queries, sizes):
    """Results index of every explicit gallery entry, query-major -> int64 [sum(sizes)].

    Raises KeyError naming the query and the first gallery image missing from the results."""
    names = list(chain.from_iterable(q.gallery_image_ids for q in queries))
    found = list(map(results.index.get, names))
    if None in found:
        entry = found.index(None)
        query = int(np.searchsorted(np.cumsum(sizes), entry, side="right"))
        raise KeyError(
            f"query {query} (image '{queries[query].image_id}'): gallery image '{names[entry]}' is missing "
            "from the results. Run the model on every gallery image of the protocol."
        )
    return np.array(found, dtype=np.int64)


def _validated_embeddings(queries, dim):
    """L2-normalised query embeddings [Q, D]; raises naming the query on NaN, a dimension mismatch,
    or an explicit gallery whose image and box counts differ."""
    sizes = [np.size(q.embedding) for q in queries]
    expected = dim or (sizes[0] if sizes else 0)
    for i, q in enumerate(queries):
        if sizes[i] != expected:
            raise ValueError(
                f"query {i} (image '{q.image_id}'): embedding has dimension {sizes[i]}, the gallery "
                f"embeddings {expected}. Query and gallery must come from the same model."
            )
        if q.has_explicit_gallery and len(q.gallery_image_ids) != len(q.gallery_boxes):
            raise ValueError(
                f"query {i} (image '{q.image_id}'): {len(q.gallery_image_ids)} gallery images but "
                f"{len(q.gallery_boxes)} gallery boxes; the protocol needs one box row (NaN: absent) per image."
            )
    embeddings = np.array([q.embedding for q in queries], dtype=np.float32).reshape(len(queries), expected)
    bad = np.flatnonzero(~np.isfinite(embeddings).all(axis=1))
    if len(bad):
        raise ValueError(f"query {bad[0]} (image '{queries[bad[0]].image_id}'): embedding contains NaN or inf. Fix the model output.")
    return l2_normalize(embeddings)


def _chunks(num_queries, entries_per_query):
    size = max(1, MAX_ENTRIES_PER_CHUNK // max(1, int(entries_per_query)))
    return [np.arange(start, min(start + size, num_queries)) for start in range(0, num_queries, size)]


def evaluate_search(
    results,
    queries,
    gallery_truth=None,
    det_thresh=0.5,
    duplicate_rule="reference",
    cross_camera=False,
    cbgm=False,
    cbgm_k1=10,
    cbgm_k2=3,
):
    """Evaluate person search for `queries` (list of SearchQuery).

    Args:
        results: GalleryResults, or {image_id: {"boxes", "scores", "embeddings"}}.
        gallery_truth: GalleryTruth; required when a query has no explicit gallery.
        det_thresh: gallery detections scoring below it are dropped.
        duplicate_rule: "reference" or "unique" (module docstring).
        cross_camera: generic galleries keep only images of other cameras than the query's.
        cbgm, cbgm_k1, cbgm_k2: CBGM re-scoring (cbgm.py).
    Returns:
        SearchEvaluation with per-query AP and best-positive rank, in query order.
    """
    if duplicate_rule not in DUPLICATE_RULES:
        raise ValueError(f"duplicate_rule must be one of {DUPLICATE_RULES}, got '{duplicate_rule}'")
    if not isinstance(results, GalleryResults):
        results = GalleryResults.from_dict(results)
    embeddings = _validated_embeddings(queries, results.dim if len(results.scores) else 0)
    explicit = np.array([q.has_explicit_gallery for q in queries], dtype=bool)
    if (~explicit).any() and gallery_truth is None:
        raise ValueError("queries without an explicit gallery need gallery_truth (the gallery dataset's records)")
    ap, hit_rank = np.zeros(len(queries)), np.full(len(queries), np.inf)
    groups = []
    if explicit.any():
        kept = results.select(results.image_ids, det_thresh)
        index = np.flatnonzero(explicit)
        per_query = np.mean([len(queries[i].gallery_image_ids) for i in index]) * max(1.0, np.mean(kept.counts))
        groups.append((kept, index, per_query, lambda r, qs, e: explicit_candidates(r, qs, e, duplicate_rule)))
    if (~explicit).any():
        kept = results.select(gallery_truth.image_ids, det_thresh)
        index = np.flatnonzero(~explicit)
        groups.append((kept, index, len(kept.scores), lambda r, qs, e: generic_candidates(r, gallery_truth, qs, e, cross_camera)))
    for kept, index, per_query, build in groups:
        for chunk in _chunks(len(index), per_query):
            chosen = index[chunk]
            chunk_queries = [queries[i] for i in chosen]
            candidates = build(kept, chunk_queries, embeddings[chosen])
            if cbgm:
                contexts = [
                    query_context(_normalized(q, embeddings[i]), results, cbgm_k2, det_thresh)
                    for q, i in zip(chunk_queries, chosen)
                ]
                cbgm_rescore(candidates, kept, contexts, cbgm_k1)
            positive = mark_positives(candidates, kept)
            ap[chosen], hit_rank[chosen] = ranking_metrics(
                pad_segments(candidates.scores, candidates.segment_start, -np.inf),
                pad_segments(positive, candidates.segment_start, False),
                candidates.num_gt,
            )
    return SearchEvaluation(ap=ap, hit_rank=hit_rank)


def _normalized(query, embedding):
    """The query with its embedding replaced by the normalised one (for CBGM contexts)."""
    return type(query)(**{**query.__dict__, "embedding": embedding})


def evaluate_conditioned_search(results_per_query, queries, gallery_truth=None, **options):
    """Person search where each query has its own gallery detections (a query-conditioned detector,
    e.g. SPNet in QC mode: one gallery pass per query).

    Args:
        results_per_query: list (one per query, in `queries` order) of GalleryResults or
            {image_id: {"boxes", "scores", "embeddings"}}, covering that query's gallery.
        queries, gallery_truth, **options: as evaluate_search (CBGM contexts come from each query's
            own results).
    Returns:
        SearchEvaluation with per-query AP and best-positive rank, in query order.
    """
    if len(results_per_query) != len(queries):
        raise ValueError(f"{len(results_per_query)} result sets for {len(queries)} queries: give one per query")
    per_query = [evaluate_search(results, [query], gallery_truth, **options) for results, query in zip(results_per_query, queries)]
    return SearchEvaluation(
        ap=np.array([e.ap[0] for e in per_query], dtype=np.float64),
        hit_rank=np.array([e.hit_rank[0] for e in per_query], dtype=np.float64),
    )
