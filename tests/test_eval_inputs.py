"""Bad input gets an error naming the query or image; detection metrics."""
import numpy as np
import pytest

from ps_plugin.evaluation import (
    GalleryResults, GalleryTruth, SearchQuery, evaluate_detection, evaluate_search, queries_for_protocol,
)

BOX = [100, 100, 150, 250]


def gallery():
    return {"a.jpg": {"boxes": [BOX], "scores": [0.9], "embeddings": [[1.0, 0.0]]}}


def query(embedding=(1.0, 0.0), images=("a.jpg",)):
    return SearchQuery("q.jpg", np.array(BOX, float), np.array(embedding, np.float32),
                       gallery_image_ids=list(images), gallery_boxes=np.array([BOX] * len(images), float))


def test_missing_gallery_image_is_named():
    with pytest.raises(KeyError, match=r"query 0 \(image 'q.jpg'\): gallery image 'b.jpg' is missing"):
        evaluate_search(gallery(), [query(images=("a.jpg", "b.jpg"))])


def test_nan_embeddings_are_named():
    bad = gallery()
    bad["a.jpg"]["embeddings"] = [[np.nan, 0.0]]
    with pytest.raises(ValueError, match="embeddings of 'a.jpg' contain NaN"):
        evaluate_search(bad, [query()])
    with pytest.raises(ValueError, match=r"query 0 \(image 'q.jpg'\): embedding contains NaN"):
        evaluate_search(gallery(), [query(embedding=(np.nan, 1.0))])


def test_dimension_mismatch_is_named():
    with pytest.raises(ValueError, match=r"query 0 \(image 'q.jpg'\): embedding has dimension 3, the gallery embeddings 2"):
        evaluate_search(gallery(), [query(embedding=(1.0, 0.0, 0.0))])
    mixed = {**gallery(), "b.jpg": {"boxes": [BOX], "scores": [0.9], "embeddings": [[1.0, 0.0, 0.0]]}}
    with pytest.raises(ValueError, match="image 'b.jpg' has 3-d embeddings"):
        GalleryResults.from_dict(mixed)


def test_length_mismatches_are_named(tmp_path):
    broken = {"a.jpg": {"boxes": [BOX, BOX], "scores": [0.9], "embeddings": [[1.0, 0.0]]}}
    with pytest.raises(ValueError, match="image 'a.jpg' has 2 boxes, 1 scores"):
        GalleryResults.from_dict(broken)
    records = [{"image_id": "q.jpg", "annotations": [{"bbox": BOX, "person_id": 1}], "query_index": i} for i in range(2)]
    saved = [{"image": "q.jpg", "box": BOX, "embedding": [1.0, 0.0]}]
    with pytest.raises(ValueError, match="1 queries, but the protocol has 2"):
        queries_for_protocol(saved, records, source="r.pkl")
    with pytest.raises(ValueError, match="query 0 is on image 'x.jpg'"):
        queries_for_protocol([{"image": "x.jpg", "embedding": [1.0, 0.0]}], records[:1])
    q = query()
    q.gallery_boxes = q.gallery_boxes[:0]
    with pytest.raises(ValueError, match="1 gallery images but 0 gallery boxes"):
        evaluate_search(gallery(), [q])


def test_detection_ap_recall_and_labeled_only():
    records = [
        {"image_id": "a.jpg", "annotations": [{"bbox": BOX, "person_id": 1}, {"bbox": [300, 100, 350, 250], "person_id": -1}]},
        {"image_id": "b.jpg", "annotations": [{"bbox": [0, 0, 40, 90], "person_id": -1}]},
    ]
    results = GalleryResults.from_dict({
        # a: a hit on person 1 (0.9), a false positive (0.8), a duplicate of person 1 (0.7, not the best match)
        "a.jpg": {"boxes": [BOX, [500, 500, 540, 600], [102, 100, 150, 250]], "scores": [0.9, 0.8, 0.7], "embeddings": np.eye(3)},
        "b.jpg": {"boxes": [[0, 0, 40, 90]], "scores": [0.005], "embeddings": np.eye(3)[:1]},  # below 0.01
    })
    truth = GalleryTruth.from_records(records)
    all_people = evaluate_detection(results, truth)
    assert all_people["recall"] == pytest.approx(1 / 3)
    assert all_people["AP"] == pytest.approx(1.0 * 1 / 3)  # the only TP ranks first: sklearn AP 1 x recall
    labeled = evaluate_detection(results, truth, labeled_only=True)
    assert labeled["recall"] == pytest.approx(1.0)
    assert evaluate_detection(results, truth, score_thresh=0.001)["recall"] == pytest.approx(2 / 3)


def test_gallery_without_any_detection_scores_zero():
    from ps_plugin.evaluation import SearchQuery, evaluate_search

    results = {"g1": {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "embeddings": np.zeros((0, 8))}}
    query = SearchQuery("q", np.array([0, 0, 10, 20.0]), np.ones(8, dtype=np.float32),
                        gallery_image_ids=["g1"], gallery_boxes=np.array([[0, 0, 10, 20.0]]))
    evaluation = evaluate_search(results, [query])
    assert evaluation.ap.tolist() == [0.0]
