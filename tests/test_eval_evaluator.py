"""PersonSearchEvaluator: order-free gallery/query passes, deduplicated queries, outputs on disk;
the real TestG100 protocol with simulated results (skipped without ../shared/data)."""
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, Instances

from ps_plugin.evaluation import (
    PersonSearchEvaluator, build_person_search_test_dicts, evaluate_search, load_results, queries_for_protocol,
)
from ps_plugin.evaluation.simulate import ResultSimulator, known_people, simulate_results

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def register_world():
    rng = np.random.default_rng(0)
    records = []
    for i in range(12):
        boxes = [[20 + 200 * j, 50, 120 + 200 * j, 300] for j in range(3)]
        pids = [int(p) for p in rng.choice([-1, 0, 1, 2, 3], size=3, replace=False)]
        records.append({"image_id": f"g{i}.jpg", "camera_id": i % 2, "height": 400, "width": 800,
                        "annotations": [{"bbox": b, "person_id": p} for b, p in zip(boxes, pids)]})
    queries = [
        {**r, "annotations": [a], "query_index": 0}
        for r in records[:4] for a in r["annotations"] if a["person_id"] >= 0
    ]
    queries = [{**q, "query_index": i} for i, q in enumerate(queries)]
    explicit = [
        {**q, "gallery": {"image_ids": [r["image_id"] for r in records[4:]],
                          "boxes": np.array([next((a["bbox"] for a in r["annotations"] if a["person_id"] == q["annotations"][0]["person_id"]), [np.nan] * 4) for r in records[4:]], np.float32)}}
        for q in queries
    ]
    for name, data in (("evtest_gallery", records), ("evtest_query_generic", queries), ("evtest_query_G8", explicit)):
        if name not in DatasetCatalog.list():
            DatasetCatalog.register(name, lambda data=data: data)
    MetadataCatalog.get("evtest_gallery").set(query_datasets=["evtest_query_generic", "evtest_query_G8"])
    MetadataCatalog.get("evtest_query_G8").set(gallery_size=8)
    return records


def model_outputs(inputs, simulator):
    outputs = []
    for item in inputs:
        pids = [a["person_id"] for a in item["annotations"]]
        if "query_keys" in item:
            outputs.append({"query_embeddings": torch.as_tensor(simulator.embed(pids))})
            continue
        det = simulator.detections([a["bbox"] for a in item["annotations"]], pids)
        instances = Instances((item["height"], item["width"]))
        instances.pred_boxes = Boxes(torch.as_tensor(det["boxes"]))
        instances.scores = torch.as_tensor(det["scores"])
        instances.pred_embeddings = torch.as_tensor(det["embeddings"])
        outputs.append({"instances": instances, "gt_embeddings": torch.as_tensor(simulator.embed(pids))})
    return outputs


def run(evaluator, dicts, outputs, batch=3):
    evaluator.reset()
    for start in range(0, len(dicts), batch):
        evaluator.process(dicts[start:start + batch], outputs[start:start + batch])
    return evaluator.evaluate()


def test_query_dedup_and_order_free_evaluation(tmp_path):
    register_world()
    dicts = build_person_search_test_dicts("evtest_gallery", ["evtest_query_generic", "evtest_query_G8"])
    query_dicts = [d for d in dicts if "query_keys" in d]
    assert len(dicts) == 12 + len(query_dicts)
    assert all(len(d["query_keys"]) == 2 for d in query_dicts)  # both sets share every query

    outputs = model_outputs(dicts, ResultSimulator(dim=8, noise=1.5, false_positives=1, seed=3))
    evaluator = PersonSearchEvaluator("evtest_gallery", output_dir=str(tmp_path), distributed=False, save_results=True)
    in_order = run(evaluator, dicts, outputs)["person_search"]
    pairs = list(zip(dicts, outputs))
    random.Random(0).shuffle(pairs)
    shuffled = run(evaluator, [p[0] for p in pairs], [p[1] for p in pairs])["person_search"]
    assert in_order == shuffled
    for name in ("evtest_query_generic", "evtest_query_G8"):
        assert 0.0 < in_order[f"{name}/mAP"] <= 1.0
        assert in_order[f"{name}/gt_mAP"] > 0.0
    assert 0.0 < in_order["det/recall"] <= 1.0
    assert json.loads((tmp_path / "person_search_metrics.json").read_text()) == pytest.approx(in_order)
    assert (tmp_path / "cmc.png").stat().st_size > 0
    gallery, saved = load_results(tmp_path / "search_results.npz", "evtest_query_G8")
    assert len(saved) == len(DatasetCatalog.get("evtest_query_G8")) and len(gallery.image_ids) == 12


def test_missing_query_embedding_is_named():
    register_world()
    dicts = build_person_search_test_dicts("evtest_gallery", ["evtest_query_generic"])
    outputs = model_outputs(dicts, ResultSimulator(dim=8, seed=0))
    evaluator = PersonSearchEvaluator("evtest_gallery", ["evtest_query_generic"], distributed=False)
    with pytest.raises(KeyError, match="evtest_query_generic: no embedding for query"):
        run(evaluator, dicts[:-1], outputs[:-1])


@pytest.fixture(scope="module")
def testg100():
    mat = DATA / "cuhk_sysu" / "TestG100.mat"
    if not mat.exists():
        pytest.skip(f"{mat} not found (../shared/data absent)")
    from ps_plugin.data.datasets.cuhk_sysu import load_cuhk_sysu_protocol

    return load_cuhk_sysu_protocol(str(mat))


@pytest.mark.slow
def test_real_testg100_with_simulated_results(testg100):
    people = known_people(testg100)
    assert len(people) > 5000
    scores, below_one = {}, {}
    for noise in (0.0, 1.5, 4.0):
        content = simulate_results(ResultSimulator(dim=64, noise=noise, false_positives=3, jitter=0.0, seed=0), testg100)
        queries = queries_for_protocol(content["queries"], testg100)
        evaluation = evaluate_search(content["gallery"], queries, duplicate_rule="unique")
        scores[noise], below_one[noise] = evaluation.summary(), int((evaluation.ap < 1.0).sum())
    # Perfect results score 1 on every query but one: TestG100 places person 10354 at two different
    # boxes of s14430.jpg (query 493's image and a gallery entry of another query).
    assert below_one[0.0] == 1 and scores[0.0]["mAP"] > 0.9997
    assert scores[0.0]["top1"] > 0.9996 and scores[0.0]["top10"] == 1.0
    assert scores[0.0]["mAP"] > scores[1.5]["mAP"] > scores[4.0]["mAP"] > 0.0
    # the reference duplicate rule caps the 4 queries whose positive image is listed twice
    content = simulate_results(ResultSimulator(dim=64, noise=0.0, false_positives=3, jitter=0.0, seed=0), testg100)
    reference = evaluate_search(content["gallery"], queries_for_protocol(content["queries"], testg100))
    assert int((reference.ap < 1.0).sum()) == below_one[0.0] + 4
