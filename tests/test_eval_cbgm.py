"""CBGM (evaluation/cbgm.py): a hand-worked scene and a brute-force re-ranking on random data.

The definition checked (SeqNet's eval_func.py with its km.py): for each query, the gallery images
holding its top-k1 detections are re-scored; the query's context (its own embedding, then its
image's other detections by descending score, k2 rows) is matched to the image's detections with
a maximum-weight bipartite matching on cosine similarities; when the query row is matched, its
detection's similarity becomes the largest weight among the matched edges.
"""
from itertools import permutations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from ps_plugin.evaluation.cbgm import cbgm_rescore, query_context
from ps_plugin.evaluation.gallery_results import GalleryResults, l2_normalize
from ps_plugin.evaluation.iou import pairwise_iou, search_iou_threshold
from ps_plugin.evaluation.protocols import evaluate_search, explicit_candidates
from ps_plugin.evaluation.search_inputs import GalleryTruth, SearchQuery
from test_eval_protocols import NAN_BOX, det, one_hot, random_world

QUERY_BOX = [100, 100, 150, 250]


def unit(*pairs):
    """Unit vector in R^5 from (dimension, value) pairs."""
    vector = np.zeros(5, dtype=np.float32)
    for dim, value in pairs:
        vector[dim] = value
    return vector


def scene():
    """The query A (embedding e0) stands in q.jpg beside B (e1) and C (e2).

    q.jpg, rows out of score order: A's own detection (IoU 1 with the query box: not context), W
    (0.6, fourth by score: beyond k2 = 3), C (0.7), B (0.9), Z (0.3 < det_thresh 0.5).
    g1 holds A (GT box = A1's box): A1 looks little like the query (0.28) but B1 is clearly B.
    g2: a distractor D (0.8 to the query) and F. g3: G (0.6) and H, an exact copy of C.
    """
    gallery = {
        "q.jpg": det([QUERY_BOX, [400, 100, 450, 250], [300, 100, 350, 250], [200, 100, 250, 250], [500, 100, 550, 250]],
                     [0.95, 0.6, 0.7, 0.9, 0.3], [unit((0, 1)), unit((3, 1)), unit((2, 1)), unit((1, 1)), unit((4, 1))]),
        "g1.jpg": det([QUERY_BOX, [200, 100, 250, 250]], [0.9, 0.9], [unit((0, 0.28), (3, 0.96)), unit((0, 5 / 13), (1, 12 / 13))]),
        "g2.jpg": det([[10, 10, 60, 160], [300, 100, 350, 250]], [0.9, 0.9], [unit((0, 0.8), (4, 0.6)), unit((4, 1))]),
        "g3.jpg": det([[10, 10, 60, 160], [200, 100, 250, 250]], [0.9, 0.9], [unit((0, 0.6), (4, 0.8)), unit((2, 1))]),
    }
    return gallery, unit((0, 1))


def scene_query(gallery_ids):
    boxes = [QUERY_BOX if name == "g1.jpg" else NAN_BOX for name in gallery_ids]
    return SearchQuery("q.jpg", np.array(QUERY_BOX, float), scene()[1], gallery_image_ids=list(gallery_ids),
                       gallery_boxes=np.array(boxes, float))


def test_query_context_is_the_query_then_top_scoring_others():
    gallery, embedding = scene()
    results = GalleryResults.from_dict(gallery)
    query = scene_query(["g1.jpg"])
    context = query_context(query, results, k2=3, min_score=0.5)
    np.testing.assert_array_equal(context, [unit((0, 1)), unit((1, 1)), unit((2, 1))])  # A, then B (0.9), C (0.7)
    np.testing.assert_array_equal(query_context(query, results, k2=1, min_score=0.5), [embedding])
    # min_score 0.2 admits Z (0.3), which stays fourth; k2 = 5 then takes W and Z after B and C
    np.testing.assert_array_equal(query_context(query, results, k2=5, min_score=0.2)[1:], np.eye(5, dtype=np.float32)[[1, 2, 3, 4]])


def test_query_context_boundaries_are_inclusive():
    """A detection with IoU exactly 0.4 with the query box (the reference's NMS threshold: kept unless
    it overlaps more) and one scoring exactly min_score both enter the context."""
    box = [0, 0, 10, 10]
    at_nms = [0, 0, 10, 4]  # IoU 40 / 100 = 0.4
    above_nms = [0, 0, 10, 4.5]  # IoU 0.45
    assert pairwise_iou(at_nms, box)[0, 0] == 0.4
    results = GalleryResults.from_dict({"q.jpg": det([at_nms, above_nms, [50, 0, 60, 10]], [0.9, 0.95, 0.5],
                                                     [one_hot(1), one_hot(2), one_hot(3)])})
    query = SearchQuery("q.jpg", np.array(box, float), one_hot(0))
    np.testing.assert_array_equal(query_context(query, results, k2=3, min_score=0.5), np.eye(4, dtype=np.float32)[[0, 1, 3]])


def test_hand_worked_rescored_similarities():
    """Gallery g1, g2, g3, k1 = 3, k2 = 3; context rows a = e0, b = e1, c = e2 (see scene()).

    Plain similarities: A1 0.28, B1 5/13 = .385 | D 0.8, F 0 | G 0.6, H 0; the top 3 (D, G, B1)
    cover the three images.
    g1  weights a: [.28, .385], b: [0, 12/13], c: [0, 0]. Best matching a-A1, b-B1 (1.203; the
        query-first greedy a-B1 + b-A1 gives .385): the query row gets A1, A1 := max(.28, 12/13).
    g2  a: [.8, 0], b, c: [0, 0]: a-D plus a zero edge to F; D := max(.8, 0) = .8 (unchanged).
    g3  a: [.6, 0], c: [0, 1]: a-G + c-H = 1.6; G := 1 (the largest matched edge, here C's).
    """
    gallery, _ = scene()
    results = GalleryResults.from_dict(gallery)
    query = scene_query(["g1.jpg", "g2.jpg", "g3.jpg"])
    kept = results.select(results.image_ids, 0.5)
    candidates = explicit_candidates(kept, [query], query.embedding[None, :], "reference")
    np.testing.assert_allclose(candidates.scores, [0.28, 5 / 13, 0.8, 0, 0.6, 0], atol=1e-6)
    cbgm_rescore(candidates, kept, [query_context(query, results, 3, 0.5)], k1=3)
    np.testing.assert_allclose(candidates.scores, [12 / 13, 5 / 13, 0.8, 0, 1.0, 0], atol=1e-6)


@pytest.mark.parametrize("k1, k2, ap, rank", [
    (None, None, 1 / 3, 3),  # no CBGM: D .8, B1 .385, A1 .28 -> the positive ranks 3rd
    (2, 3, 1.0, 1),  # top-2 (D, B1) bring in g1: A1 := 12/13 ranks first
    (1, 3, 1 / 3, 3),  # top-1 is D alone: g1 is not re-scored
    (2, 1, 1 / 3, 3),  # no context: the query row takes B1, whose score stays 5/13
])
def test_hand_worked_search_with_cbgm(k1, k2, ap, rank):
    gallery, _ = scene()
    options = {"cbgm": True, "cbgm_k1": k1, "cbgm_k2": k2} if k1 else {}
    result = evaluate_search(gallery, [scene_query(["g1.jpg", "g2.jpg"])], **options)
    assert result.ap[0] == pytest.approx(ap)
    assert result.hit_rank[0] == rank


# ---------------------------------------------------------------- brute force on random data
def brute_force_matching(weights):
    """Maximum-weight matching of min(K, N) edges of a [K, N] graph, by enumeration: [(row, col)]."""
    rows, cols = weights.shape
    if rows <= cols:
        matchings = [list(zip(range(rows), p)) for p in permutations(range(cols), rows)]
    else:
        matchings = [list(zip(p, range(cols))) for p in permutations(range(rows), cols)]
    return max(matchings, key=lambda matching: sum(weights[r, c] for r, c in matching))


def kept_detections(gallery, name, det_thresh):
    d = gallery[name]
    keep = np.asarray(d["scores"]) >= det_thresh
    return np.asarray(d["boxes"], float)[keep], l2_normalize(np.asarray(d["embeddings"])[keep]), np.asarray(d["scores"])[keep]


def reference_cbgm(gallery, query, names, det_thresh, k1, k2):
    """Re-scored similarities {image: [kept detections]} of one query over gallery images `names`."""
    feat_q = l2_normalize(query.embedding[None, :])[0]
    feats = {name: kept_detections(gallery, name, det_thresh)[1] for name in names}
    sims = {name: f @ feat_q for name, f in feats.items()}
    boxes, own_feats, scores = kept_detections(gallery, query.image_id, det_thresh)
    others = [i for i in np.argsort(-scores, kind="stable") if pairwise_iou(boxes[i], query.box)[0, 0] <= 0.4]
    context = np.concatenate([feat_q[None, :], own_feats[others[: k2 - 1]]])
    ranked = sorted(((s, name) for name in names for s in sims[name]), reverse=True)
    for name in {name for _, name in ranked[:k1]}:
        weights = context @ feats[name].T
        matching = brute_force_matching(weights)
        for row, col in matching:
            if row == 0:
                sims[name][col] = max(weights[r, c] for r, c in matching)
    return sims


def reference_ap(sims, gt_boxes, boxes, num_gt):
    """AP and best-positive rank of one query: per image, the most similar detection matching its GT."""
    y_true, y_score = [], []
    for name, sim in sims.items():
        label = np.zeros(len(sim))
        gt = gt_boxes[name]
        if not np.isnan(gt).any():
            threshold = search_iou_threshold(gt)[0]
            for j in np.argsort(-sim, kind="stable"):
                if pairwise_iou(boxes[name][j], gt)[0, 0] >= threshold:
                    label[j] = 1
                    break
        y_true.extend(label)
        y_score.extend(sim)
    y_true, y_score = np.array(y_true), np.array(y_score)
    found = y_true.sum()
    ap = average_precision_score(y_true, y_score) * found / num_gt if found else 0.0
    rank = 1 + (y_score[y_true == 0] >= y_score[y_true == 1].max()).sum() if found else np.inf
    return ap, rank


def random_queries(seed):
    """random_world, each labeled person a query twice: with an explicit gallery of 6 distinct other
    images (the person's box where present) and with the generic one (every other image)."""
    rng, sim, records, gallery = random_world(seed, num_images=16, num_ids=5)
    explicit, generic = [], []
    for r in records:
        for a in r["annotations"]:
            if a["person_id"] < 0:
                continue
            embedding = sim.embed([a["person_id"]])[0]
            others = [x for x in records if x is not r]
            chosen = [others[i] for i in rng.choice(len(others), size=6, replace=False)]
            boxes = [next((b["bbox"] for b in x["annotations"] if b["person_id"] == a["person_id"]), NAN_BOX) for x in chosen]
            explicit.append(SearchQuery(r["image_id"], np.array(a["bbox"]), embedding,
                                        gallery_image_ids=[x["image_id"] for x in chosen], gallery_boxes=np.array(boxes, float)))
            generic.append(SearchQuery(r["image_id"], np.array(a["bbox"]), embedding, a["person_id"]))
    return records, gallery, explicit, generic


@pytest.mark.parametrize("k1, k2", [(4, 3), (10, 2)])
def test_rescored_similarities_match_brute_force(k1, k2):
    changed = 0
    for seed in range(3):
        _, gallery, queries, _ = random_queries(seed)
        results = GalleryResults.from_dict(gallery)
        kept = results.select(results.image_ids, 0.3)
        embeddings = l2_normalize(np.stack([q.embedding for q in queries]))
        candidates = explicit_candidates(kept, queries, embeddings, "reference")
        plain = candidates.scores.copy()
        contexts = [query_context(SearchQuery(q.image_id, q.box, e), results, k2, 0.3) for q, e in zip(queries, embeddings)]
        cbgm_rescore(candidates, kept, contexts, k1)
        for index, query in enumerate(queries):
            expected = reference_cbgm(gallery, query, query.gallery_image_ids, 0.3, k1, k2)
            entries = np.flatnonzero(candidates.entry_query == index)
            images = kept.det_image[candidates.entry_det[entries]]
            expected_scores = np.concatenate([expected[kept.image_ids[g]] for g in np.unique(images)])
            np.testing.assert_allclose(candidates.scores[entries], expected_scores, atol=1e-6)
        changed += int((candidates.scores != plain).sum())
    assert changed >= 50  # CBGM moved many scores: the comparison is not between plain similarities


def test_search_with_cbgm_matches_brute_force_reranking():
    differs = 0
    for seed in range(3):
        records, gallery, explicit, generic = random_queries(seed + 10)
        truth = GalleryTruth.from_records(records)
        boxes = {name: kept_detections(gallery, name, 0.3)[0] for name in gallery}
        expected_ap, expected_rank = [], []
        for query in explicit:
            sims = reference_cbgm(gallery, query, query.gallery_image_ids, 0.3, 5, 3)
            gt = dict(zip(query.gallery_image_ids, query.gallery_boxes))
            ap, rank = reference_ap(sims, gt, boxes, (~np.isnan(query.gallery_boxes[:, 0])).sum())
            expected_ap.append(ap)
            expected_rank.append(rank)
        for query in generic:
            names = [r["image_id"] for r in records if r["image_id"] != query.image_id]
            gt = {r["image_id"]: next((a["bbox"] for a in r["annotations"] if a["person_id"] == query.person_id), NAN_BOX)
                  for r in records}
            sims = reference_cbgm(gallery, query, names, 0.3, 5, 3)
            ap, rank = reference_ap(sims, {n: np.array(gt[n], float) for n in names}, boxes,
                                    sum(not np.isnan(gt[n][0]) for n in names))
            expected_ap.append(ap)
            expected_rank.append(rank)
        result = evaluate_search(gallery, explicit + generic, truth, det_thresh=0.3, cbgm=True, cbgm_k1=5, cbgm_k2=3)
        np.testing.assert_allclose(result.ap, expected_ap, atol=1e-6)
        np.testing.assert_array_equal(result.hit_rank, expected_rank)
        plain = evaluate_search(gallery, explicit + generic, truth, det_thresh=0.3)
        differs += int((np.abs(plain.ap - result.ap) > 1e-6).sum())
    assert differs >= 20  # CBGM changed the AP of many queries
