"""Search protocols: hand-worked cases, exact thresholds and ties, and the vectorised code against a
plain per-query loop."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from ps_plugin.evaluation.detection_metrics import evaluate_detection
from ps_plugin.evaluation.gallery_results import GalleryResults
from ps_plugin.evaluation.iou import paired_iou, pairwise_iou, search_iou_threshold
from ps_plugin.evaluation.protocols import evaluate_conditioned_search, evaluate_search, explicit_candidates, mark_positives
from ps_plugin.evaluation.search_inputs import GalleryTruth, SearchQuery
from ps_plugin.evaluation.search_metrics import ranking_metrics
from ps_plugin.evaluation.simulate import ResultSimulator

NAN_BOX = [np.nan] * 4


def one_hot(index, dim=4):
    vector = np.zeros(dim, dtype=np.float32)
    vector[index] = 1.0
    return vector


def det(boxes, scores, embeddings):
    return {"boxes": np.asarray(boxes, float), "scores": np.asarray(scores, float), "embeddings": np.asarray(embeddings, np.float32)}


def explicit_query(gallery_ids, gallery_boxes, embedding, image="q.jpg"):
    return SearchQuery(image, np.array([0, 0, 10, 10.0]), np.asarray(embedding, np.float32),
                       gallery_image_ids=list(gallery_ids), gallery_boxes=np.asarray(gallery_boxes, float))


# ---------------------------------------------------------------- plain per-query reference loop
def reference_search(gallery, queries, truth=None, det_thresh=0.5, duplicate_rule="reference", cross_camera=False):
    """The field's evaluation loop, written plainly: one query, one gallery entry at a time."""
    aps, ranks = [], []
    for q in queries:
        feat_q = q.embedding / np.linalg.norm(q.embedding)
        if q.gallery_image_ids is not None:
            entries = list(zip(q.gallery_image_ids, q.gallery_boxes))
        else:
            entries = []
            for g, name in enumerate(truth.image_ids):
                if name == q.image_id or (cross_camera and truth.camera_ids[g] == q.camera_id):
                    continue
                boxes, pids = truth.boxes_of(g)
                hit = boxes[pids == q.person_id] if q.person_id >= 0 else np.zeros((0, 4))
                entries.append((name, hit[0] if len(hit) else np.array(NAN_BOX)))
        y_true, y_score, seen, count_gt, count_tp = [], [], {}, 0, 0
        for name, gt in entries:
            has_gt = not np.isnan(gt).any()
            if duplicate_rule == "reference":
                count_gt += has_gt
            if name in seen:
                if duplicate_rule == "unique" and has_gt and np.isnan(seen[name]).any():
                    seen[name] = gt
                continue
            seen[name] = gt
        if duplicate_rule == "unique":
            count_gt = sum(not np.isnan(gt).any() for gt in seen.values())
        for name, gt in seen.items():
            d = gallery[name]
            keep = np.asarray(d["scores"]) >= det_thresh
            boxes, feats = np.asarray(d["boxes"])[keep], np.asarray(d["embeddings"], np.float32)[keep]
            if len(boxes) == 0:
                continue
            feats = feats / np.linalg.norm(feats, axis=1, keepdims=True)
            sim = feats @ feat_q
            label = np.zeros(len(sim))
            if not np.isnan(gt).any():
                w, h = gt[2] - gt[0], gt[3] - gt[1]
                thresh = min(0.5, w * h / ((w + 10) * (h + 10)))
                order = np.argsort(sim, kind="stable")[::-1]
                sim, boxes = sim[order], boxes[order]
                for j, box in enumerate(boxes):
                    if pairwise_iou(box, gt)[0, 0] >= thresh:
                        label[j] = 1
                        count_tp += 1
                        break
            y_true.extend(label)
            y_score.extend(sim)
        y_true, y_score = np.array(y_true), np.array(y_score)
        aps.append(0.0 if count_tp == 0 else average_precision_score(y_true, y_score) * count_tp / count_gt)
        order = np.argsort(-y_score, kind="stable")
        hits = np.flatnonzero(y_true[order])
        ranks.append(hits[0] + 1 if len(hits) else np.inf)
    return np.array(aps), np.array(ranks, dtype=float)


# ---------------------------------------------------------------- random data
def test_generic_gallery_without_any_detection_gives_ap_zero():
    records = [{"image_id": f"{name}.jpg", "annotations": [{"bbox": PERSON, "person_id": 0}]} for name in "ab"]
    empty = {r["image_id"]: det(np.zeros((0, 4)), [], np.zeros((0, 4))) for r in records}
    query = SearchQuery("a.jpg", np.array(PERSON, float), one_hot(0), 0)
    result = evaluate_search(empty, [query], GalleryTruth.from_records(records))
    assert result.ap[0] == 0.0 and result.hit_rank[0] == np.inf


def random_world(seed, num_images=30, num_ids=8, num_cameras=3):
    rng = np.random.default_rng(seed)
    sim = ResultSimulator(dim=16, noise=2.0, jitter=0.15, false_positives=1.5, seed=seed)
    records, gallery = [], {}
    for i in range(num_images):
        n = rng.integers(0, 4)
        xy = rng.uniform(0, 600, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform([5, 10], [150, 300], (n, 2))], axis=1)
        pids = rng.choice(np.arange(-1, num_ids), size=n, replace=False) if n else np.zeros(0, int)
        name = f"img{i}.jpg"
        records.append({"image_id": name, "camera_id": int(rng.integers(num_cameras)),
                        "annotations": [{"bbox": list(b), "person_id": int(p)} for b, p in zip(boxes, pids)]})
        gallery[name] = sim.detections(boxes, pids)
    return rng, sim, records, gallery


def test_random_explicit_galleries_match_reference_loop():
    for seed in range(4):
        rng, sim, records, gallery = random_world(seed)
        queries = []
        for r in records:
            for a in r["annotations"]:
                if a["person_id"] < 0:
                    continue
                names = list(rng.choice([x["image_id"] for x in records if x is not r], size=12))
                names += names[:2]  # duplicate entries
                boxes = []
                for name in names:
                    other = next(x for x in records if x["image_id"] == name)
                    match = [b["bbox"] for b in other["annotations"] if b["person_id"] == a["person_id"]]
                    boxes.append(match[0] if match and rng.uniform() < 0.9 else NAN_BOX)
                queries.append(explicit_query(names, boxes, sim.embed([a["person_id"]])[0], r["image_id"]))
        for rule in ("reference", "unique"):
            result = evaluate_search(gallery, queries, det_thresh=0.3, duplicate_rule=rule)
            ap, rank = reference_search(gallery, queries, det_thresh=0.3, duplicate_rule=rule)
            np.testing.assert_allclose(result.ap, ap, atol=1e-9)
            np.testing.assert_array_equal(result.hit_rank, rank)
            assert 0.05 < result.ap.mean() < 0.95


@pytest.mark.parametrize("cross_camera", [False, True])
def test_random_generic_galleries_match_reference_loop(cross_camera):
    for seed in range(3):
        rng, sim, records, gallery = random_world(seed + 10)
        truth = GalleryTruth.from_records(records)
        queries = [
            SearchQuery(r["image_id"], np.array(a["bbox"]), sim.embed([a["person_id"]])[0], a["person_id"], r["camera_id"])
            for r in records for a in r["annotations"] if a["person_id"] >= 0
        ]
        result = evaluate_search(gallery, queries, truth, det_thresh=0.3, cross_camera=cross_camera)
        ap, rank = reference_search(gallery, queries, truth, det_thresh=0.3, cross_camera=cross_camera)
        np.testing.assert_allclose(result.ap, ap, atol=1e-9)
        np.testing.assert_array_equal(result.hit_rank, rank)
        assert 0.05 < result.ap.mean() < 0.95


def test_chunked_evaluation_equals_single_chunk(monkeypatch):
    from ps_plugin.evaluation import protocols

    rng, sim, records, gallery = random_world(3)
    truth = GalleryTruth.from_records(records)
    queries = [SearchQuery(r["image_id"], np.array(a["bbox"]), sim.embed([a["person_id"]])[0], a["person_id"])
               for r in records for a in r["annotations"] if a["person_id"] >= 0]
    whole = evaluate_search(gallery, queries, truth, det_thresh=0.3)
    monkeypatch.setattr(protocols, "MAX_ENTRIES_PER_CHUNK", 50)
    chunked = evaluate_search(gallery, queries, truth, det_thresh=0.3)
    np.testing.assert_array_equal(whole.ap, chunked.ap)
    np.testing.assert_array_equal(whole.hit_rank, chunked.hit_rank)


# ---------------------------------------------------------------- hand-worked cases
PERSON = [100, 100, 150, 250]


def two_image_gallery():
    return {
        "a.jpg": det([PERSON, [300, 100, 350, 250]], [0.9, 0.9], [one_hot(0), one_hot(1)]),
        "b.jpg": det([[10, 10, 60, 160], PERSON], [0.9, 0.9], [one_hot(2), one_hot(0)]),
        "c.jpg": det([[10, 10, 60, 160]], [0.9], [one_hot(3)]),
    }


def test_perfect_one_hot_results_score_one():
    query = explicit_query(["a.jpg", "b.jpg", "c.jpg"], [PERSON, PERSON, NAN_BOX], one_hot(0))
    summary = evaluate_search(two_image_gallery(), [query]).summary()
    assert summary == {"mAP": 1.0, "top1": 1.0, "top5": 1.0, "top10": 1.0}


def test_missing_detection_scales_ap_by_recall():
    gallery = two_image_gallery()
    gallery["b.jpg"] = det([[10, 10, 60, 160]], [0.9], [one_hot(2)])  # the person is not detected in b
    query = explicit_query(["a.jpg", "b.jpg", "c.jpg"], [PERSON, PERSON, NAN_BOX], one_hot(0))
    result = evaluate_search(gallery, [query])
    assert result.ap[0] == pytest.approx(0.5)  # sklearn AP 1.0 on what was found x recall 1/2
    assert result.hit_rank[0] == 1


def test_low_score_detection_is_dropped_by_det_thresh():
    gallery = two_image_gallery()
    gallery["b.jpg"]["scores"] = np.array([0.9, 0.4])
    query = explicit_query(["a.jpg", "b.jpg"], [PERSON, PERSON], one_hot(0))
    assert evaluate_search(gallery, [query], det_thresh=0.5).ap[0] == pytest.approx(0.5)
    assert evaluate_search(gallery, [query], det_thresh=0.3).ap[0] == pytest.approx(1.0)


def test_empty_detections_give_ap_zero():
    gallery = {"a.jpg": det(np.zeros((0, 4)), [], np.zeros((0, 4))), "c.jpg": det([[10, 10, 60, 160]], [0.9], [one_hot(3)])}
    query = explicit_query(["a.jpg", "c.jpg"], [PERSON, NAN_BOX], one_hot(0))
    result = evaluate_search(gallery, [query])
    assert result.ap[0] == 0.0 and result.hit_rank[0] == np.inf
    assert result.summary()["top10"] == 0.0


def test_tiny_box_uses_lowered_iou_threshold():
    tiny = [0, 0, 10, 20]  # threshold w*h / ((w+10)(h+10)) = 200 / 600 = 1/3
    weak = [0, 0, 10, 8.5]  # IoU = 85 / 200 = 0.425: below 0.5, above 1/3 -> still a match
    gallery = {"a.jpg": det([weak], [0.9], [one_hot(0)])}
    assert evaluate_search(gallery, [explicit_query(["a.jpg"], [tiny], one_hot(0))]).ap[0] == 1.0
    too_weak = [0, 0, 10, 6]  # IoU 0.3 < 1/3
    gallery = {"a.jpg": det([too_weak], [0.9], [one_hot(0)])}
    assert evaluate_search(gallery, [explicit_query(["a.jpg"], [tiny], one_hot(0))]).ap[0] == 0.0
    big = [0, 0, 100, 200]  # threshold 0.5: an IoU 0.425 match is rejected
    gallery = {"a.jpg": det([[0, 0, 100, 85]], [0.9], [one_hot(0)])}
    assert evaluate_search(gallery, [explicit_query(["a.jpg"], [big], one_hot(0))]).ap[0] == 0.0


def test_only_first_matching_detection_by_similarity_is_positive():
    # two detections on the person: the more similar one is the positive, the other a negative
    emb_hi = one_hot(0)
    emb_lo = (one_hot(0) + one_hot(1)) / np.sqrt(2)
    gallery = {"a.jpg": det([PERSON, [101, 101, 151, 251]], [0.9, 0.9], [emb_lo, emb_hi])}
    result = evaluate_search(gallery, [explicit_query(["a.jpg"], [PERSON], one_hot(0))])
    assert result.ap[0] == 1.0  # positive (sim 1) ranks first; the duplicate (sim .71) is a negative after it


def test_duplicate_gallery_image_rules():
    """Gallery a, a, c; the person is in a (listed twice). The image a is ranked once.

    reference: protocol positives = 2 (both entries), one found -> AP = 1 * 1/2.
    unique:    protocol positives = 1 -> AP = 1.
    """
    query = explicit_query(["a.jpg", "a.jpg", "c.jpg"], [PERSON, PERSON, NAN_BOX], one_hot(0))
    gallery = two_image_gallery()
    assert evaluate_search(gallery, [query], duplicate_rule="reference").ap[0] == pytest.approx(0.5)
    assert evaluate_search(gallery, [query], duplicate_rule="unique").ap[0] == pytest.approx(1.0)
    # a's detections are ranked once: b's positive (sim .894) ties with one negative of a (.894),
    # so it ranks 2nd; were a's detections listed twice it would rank 3rd.
    query_b = explicit_query(["a.jpg", "a.jpg", "b.jpg"], [NAN_BOX, NAN_BOX, PERSON], one_hot(0) + 0.5 * one_hot(1))
    assert evaluate_search(gallery, [query_b], duplicate_rule="reference").hit_rank[0] == 2
    with pytest.raises(ValueError, match="duplicate_rule"):
        evaluate_search(gallery, [query], duplicate_rule="twice")


def test_unlabeled_persons_are_never_positives():
    records = [
        {"image_id": "q.jpg", "camera_id": 0, "annotations": [{"bbox": PERSON, "person_id": -1}]},
        {"image_id": "a.jpg", "camera_id": 1, "annotations": [{"bbox": PERSON, "person_id": -1}]},
    ]
    gallery = {"q.jpg": det([PERSON], [0.9], [one_hot(0)]), "a.jpg": det([PERSON], [0.9], [one_hot(0)])}
    query = SearchQuery("q.jpg", np.array(PERSON, float), one_hot(0), person_id=-1, camera_id=0)
    result = evaluate_search(gallery, [query], GalleryTruth.from_records(records))
    assert result.ap[0] == 0.0 and result.hit_rank[0] == np.inf


def test_prw_camera_option_changes_the_gallery():
    """Person 5 is in a (camera 0, like the query) and b (camera 1); c (camera 1) holds a distractor
    that looks more like the query than b's detection does.

    all cameras: a (sim 1) first, c (0.8), b (0.6): AP = (1/1 + 2/3) / 2 = 5/6, top-1 hit.
    cross-camera: gallery = {b, c}: c (0.8) then b: AP = 1/2, rank 2.
    """
    records = [
        {"image_id": "q.jpg", "camera_id": 0, "annotations": [{"bbox": PERSON, "person_id": 5}]},
        {"image_id": "a.jpg", "camera_id": 0, "annotations": [{"bbox": PERSON, "person_id": 5}]},
        {"image_id": "b.jpg", "camera_id": 1, "annotations": [{"bbox": PERSON, "person_id": 5}]},
        {"image_id": "c.jpg", "camera_id": 1, "annotations": [{"bbox": PERSON, "person_id": 7}]},
    ]
    gallery = {
        "q.jpg": det([PERSON], [0.9], [one_hot(0)]),
        "a.jpg": det([PERSON], [0.9], [one_hot(0)]),
        "b.jpg": det([PERSON], [0.9], [0.6 * one_hot(0) + 0.8 * one_hot(1)]),
        "c.jpg": det([PERSON], [0.9], [0.8 * one_hot(0) + 0.6 * one_hot(2)]),
    }
    truth = GalleryTruth.from_records(records)
    query = SearchQuery("q.jpg", np.array(PERSON, float), one_hot(0), person_id=5, camera_id=0)
    every = evaluate_search(gallery, [query], truth)
    assert every.ap[0] == pytest.approx(5 / 6) and every.hit_rank[0] == 1
    cross = evaluate_search(gallery, [query], truth, cross_camera=True)
    assert cross.ap[0] == pytest.approx(0.5) and cross.hit_rank[0] == 2


# ---------------------------------------------------------------- exact thresholds and ties
# The rules are inclusive: a detection matches at IoU >= threshold and is kept at score >= threshold.
# Every case below sits exactly on a threshold, with values exact in binary floating point.
BIG_GT = [0, 0, 100, 200]  # search threshold min(0.5, 20000 / (110 * 210)) = 0.5
SMALL_GT = [0, 0, 10, 10]  # search threshold min(0.5, 100 / (20 * 20)) = 0.25


@pytest.mark.parametrize("gt, box, iou, threshold, matches", [
    (BIG_GT, [0, 0, 100, 100], 0.5, 0.5, True),  # 10000 / 20000, exactly the threshold
    (SMALL_GT, [0, 0, 20, 20], 0.25, 0.25, True),  # 100 / 400, exactly the small-box threshold
    (SMALL_GT, [0, 0, 20, 20.5], 100 / 410, 0.25, False),  # just below it
    (BIG_GT, [0, 0, 100, 50], 0.25, 0.5, False),  # 0.25 is enough for a small box only
])
def test_search_match_at_exact_iou_threshold(gt, box, iou, threshold, matches):
    assert paired_iou([box], [gt])[0] == iou
    assert search_iou_threshold([gt])[0] == threshold
    gallery = {"a.jpg": det([box], [0.9], [one_hot(0)])}
    result = evaluate_search(gallery, [explicit_query(["a.jpg"], [gt], one_hot(0))])
    assert result.ap[0] == (1.0 if matches else 0.0)


def test_detection_true_positive_at_exact_iou_threshold():
    truth = GalleryTruth.from_records([{"image_id": "a.jpg", "annotations": [{"bbox": BIG_GT, "person_id": 1}]}])
    results = GalleryResults.from_dict({"a.jpg": det([[0, 0, 100, 100]], [0.9], [one_hot(0)])})  # IoU 0.5
    assert evaluate_detection(results, truth, iou_thresh=0.5) == {"AP": 1.0, "recall": 1.0}
    assert evaluate_detection(results, truth, iou_thresh=np.nextafter(0.5, 1)) == {"AP": 0.0, "recall": 0.0}


def test_detections_scoring_exactly_the_threshold_are_kept():
    gallery = {"a.jpg": det([PERSON], [0.5], [one_hot(0)])}
    query = explicit_query(["a.jpg"], [PERSON], one_hot(0))
    assert evaluate_search(gallery, [query], det_thresh=0.5).ap[0] == 1.0
    assert evaluate_search(gallery, [query], det_thresh=np.nextafter(0.5, 1)).ap[0] == 0.0
    truth = GalleryTruth.from_records([{"image_id": "a.jpg", "annotations": [{"bbox": PERSON, "person_id": 1}]}])
    results = GalleryResults.from_dict({"a.jpg": det([PERSON], [0.25], [one_hot(0)])})
    assert evaluate_detection(results, truth, score_thresh=0.25)["recall"] == 1.0
    assert evaluate_detection(results, truth, score_thresh=np.nextafter(0.25, 1))["recall"] == 0.0


@pytest.mark.parametrize("scores, positive, num_gt, ap, rank", [
    # one threshold holds two positives and a negative: precision 2/3 at recall 1 (ranking the
    # positives first would give 1, the negative first then one positive at a time 7/12); the
    # negative ties the best positive: rank 2
    ([0.5, 0.5, 0.5, 0.2], [1, 0, 1, 0], 2, 2 / 3, 2),
    # a higher negative, then the positive tied with a negative: precision 1/3; rank 3
    ([0.9, 0.5, 0.5, -np.inf], [0, 1, 0, 0], 1, 1 / 3, 3),
    # 0.7 alone (precision 1, recall 1/2), then a positive tied with two negatives (2/4, recall 1):
    # sklearn AP 1/2 + 1/4 = 3/4, x found / protocol positives 2/3 = 1/2
    ([0.7, 0.5, 0.5, 0.5], [1, 1, 0, 0], 3, 1 / 2, 1),
])
def test_tied_scores_form_one_threshold(scores, positive, num_gt, ap, rank):
    scores, positive = np.array([scores]), np.array([positive], dtype=bool)
    result_ap, result_rank = ranking_metrics(scores, positive, np.array([num_gt]))
    assert result_ap[0] == pytest.approx(ap)
    assert result_rank[0] == rank
    listed = np.isfinite(scores[0])
    sklearn_ap = average_precision_score(positive[0][listed], scores[0][listed]) * positive.sum() / num_gt
    assert result_ap[0] == pytest.approx(sklearn_ap)


def test_positive_tied_with_a_negative_in_search():
    """The person's detection in a and a stranger in c have the same embedding: AP 1/2, rank 2."""
    gallery = {"a.jpg": det([PERSON], [0.9], [one_hot(0)]), "c.jpg": det([[10, 10, 60, 160]], [0.9], [one_hot(0)])}
    result = evaluate_search(gallery, [explicit_query(["a.jpg", "c.jpg"], [PERSON, NAN_BOX], one_hot(0))])
    assert result.ap[0] == pytest.approx(0.5)
    assert result.hit_rank[0] == 2


@pytest.mark.parametrize("boxes, expected", [
    ([PERSON, [101, 100, 151, 250]], [False, True]),  # both match the GT with equal similarity: the later one
    ([PERSON, [300, 100, 350, 250]], [True, False]),  # equal similarity, only the first matches: the first
])
def test_similarity_ties_go_to_the_later_matching_detection(boxes, expected):
    """Module rule (the reference's reversed argsort): among equally similar matching detections the
    later one is the positive. AP cannot tell (the tied scores are equal), so mark_positives is read."""
    results = GalleryResults.from_dict({"a.jpg": det(boxes, [0.9, 0.9], [one_hot(0), one_hot(0)])})
    query = explicit_query(["a.jpg"], [PERSON], one_hot(0))
    candidates = explicit_candidates(results, [query], query.embedding[None, :], "reference")
    assert candidates.scores[0] == candidates.scores[1]
    np.testing.assert_array_equal(mark_positives(candidates, results), expected)


# ---------------------------------------------------------------- query-conditioned detectors
def test_conditioned_search_with_shared_detections_equals_evaluate_search():
    rng, sim, records, gallery = random_world(5)
    truth = GalleryTruth.from_records(records)
    queries = [SearchQuery(r["image_id"], np.array(a["bbox"]), sim.embed([a["person_id"]])[0], a["person_id"])
               for r in records for a in r["annotations"] if a["person_id"] >= 0]
    shared = evaluate_search(gallery, queries, truth, det_thresh=0.3)
    conditioned = evaluate_conditioned_search([gallery] * len(queries), queries, truth, det_thresh=0.3)
    np.testing.assert_allclose(conditioned.ap, shared.ap, atol=1e-12)
    np.testing.assert_array_equal(conditioned.hit_rank, shared.hit_rank)


def test_conditioned_search_ranks_each_query_in_its_own_detections():
    found = two_image_gallery()
    missed = {**found, "b.jpg": det([[10, 10, 60, 160]], [0.9], [one_hot(2)])}  # no detection of the person in b
    query = explicit_query(["a.jpg", "b.jpg", "c.jpg"], [PERSON, PERSON, NAN_BOX], one_hot(0))
    result = evaluate_conditioned_search([found, missed], [query, query])
    np.testing.assert_allclose(result.ap, [1.0, 0.5])
    with pytest.raises(ValueError, match="one per query"):
        evaluate_conditioned_search([found], [query, query])

