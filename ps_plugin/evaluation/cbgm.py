"""Context bipartite graph matching (CBGM, SeqNet Sec. 3.4): re-score the query's best match in a
gallery image using the other people of the query image as context.

For each query, the gallery images holding its top-k1 detections (by similarity) are re-scored: a
bipartite graph joins the query image's context people (the query box first, then the query image's
detections by descending score, k2 rows in all) to the image's detections, with edge weight = cosine
similarity. Kuhn-Munkres (scipy `linear_sum_assignment`, maximum weight) matches them; when the query
row is matched, its matched detection's similarity becomes the largest matched edge weight (the
reference implementation's `max_val`).
"""
import numpy as np

from .iou import pairwise_iou
from .search_metrics import pad_segments

# The reference adds the query box to the query image's detections before its test-time NMS
# (IoU 0.4), so detections of the query person itself never enter the context.
CONTEXT_NMS_IOU = 0.4


def query_context(query, results, k2, min_score):
    """Context embeddings [K, D] (K <= k2) of one query: its own embedding, then its image's detections.

    Args:
        query: SearchQuery (box, embedding L2-normalised by the caller).
        results: GalleryResults holding the query image's detections, if it was processed.
        k2: rows in all; min_score: detections below it are ignored.
    """
    rows = [query.embedding[None, :]]
    image = results.index.get(query.image_id)
    if image is not None and k2 > 1:
        start, stop = results.image_offsets[image], results.image_offsets[image + 1]
        scores = results.scores[start:stop]
        keep = (scores >= min_score) & (pairwise_iou(results.boxes[start:stop], query.box)[:, 0] <= CONTEXT_NMS_IOU)
        order = np.flatnonzero(keep)[np.argsort(-scores[keep], kind="stable")][: k2 - 1]
        rows.append(results.embeddings[start:stop][order])
    return np.concatenate(rows, axis=0)


def segment_topk(scores, segment_start, k):
    """Entry indices of the k highest finite scores of every segment.

    scores [E]; segment_start int [Q + 1] (segment q = entries segment_start[q]:segment_start[q+1]).
    Returns int64 [<= Q * k].
    """
    if len(scores) == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    padded = pad_segments(scores, segment_start, -np.inf)
    k = min(k, padded.shape[1])
    columns = np.argpartition(-padded, k - 1, axis=1)[:, :k]
    valid = np.isfinite(np.take_along_axis(padded, columns, axis=1))
    return (segment_start[:-1, None] + columns)[valid]


def cbgm_rescore(candidates, results, contexts, k1):
    """Apply CBGM in place to candidates.scores.

    Args:
        candidates: CandidateLists (entries of one image are contiguous per query).
        results: the GalleryResults the candidates index into.
        contexts: list of [K_q, D] context embeddings per query of the candidates (query_context).
        k1: number of top detections whose images are re-scored.
    """
    from scipy.optimize import linear_sum_assignment  # here: 1 s of import that plain evaluation skips

    top = segment_topk(candidates.scores, candidates.segment_start, k1)
    dets = candidates.entry_det[top]
    images = results.det_image[dets]
    first_entry = top - (dets - results.image_offsets[images])
    queries = candidates.entry_query[top]
    _, unique = np.unique(queries * len(results.image_ids) + images, return_index=True)
    for query, image, entry in zip(queries[unique], images[unique], first_entry[unique]):
        start, stop = results.image_offsets[image], results.image_offsets[image + 1]
        weights = contexts[query] @ results.embeddings[start:stop].T
        rows, cols = linear_sum_assignment(weights, maximize=True)
        if len(rows) and rows[0] == 0:
            candidates.scores[entry + cols[0]] = weights[rows, cols].max()
