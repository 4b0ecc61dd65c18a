"""Query-centric evaluation (a gallery pass per query, SPNet QC mode): which (image, query) pairs run,
and the metrics of an oracle query-conditioned detector."""
import numpy as np
import pytest
import torch
from detectron2.structures import Boxes, Instances
from test_eval_evaluator import register_world

from ps_plugin.evaluation import PersonSearchEvaluator, build_person_search_test_dicts, query_centric_inference

NUM_IDS = 4


def one_hot(pid):
    vector = torch.zeros(NUM_IDS)
    vector[pid] = 1.0
    return vector


class OracleConditionedDetector(torch.nn.Module):
    """Detects, for query person p, exactly the boxes of p in the gallery image (score 0.9, one-hot
    embedding of p); with `blind` it detects nothing. Records every (image, [query pids]) call."""

    query_conditioned = True

    def __init__(self, blind=False):
        super().__init__()
        self.blind = blind
        self.calls = []

    def encode_queries(self, query_input):
        pid = query_input["annotations"][0]["person_id"]
        return one_hot(pid)[None], torch.tensor([[pid]])

    def detect_for_queries(self, gallery_input, detection_queries):
        pids = detection_queries[:, 0].tolist()
        self.calls.append((gallery_input["image_id"], pids))
        detections = []
        for pid in pids:
            boxes = [] if self.blind else [a["bbox"] for a in gallery_input["annotations"] if a["person_id"] == pid]
            found = Instances((gallery_input["height"], gallery_input["width"]))
            found.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
            found.scores = torch.full((len(boxes),), 0.9)
            found.pred_embeddings = one_hot(pid).expand(len(boxes), NUM_IDS)
            detections.append(found)
        pids_in_image = [max(a["person_id"], 0) for a in gallery_input["annotations"]]
        return detections, torch.stack([one_hot(p) for p in pids_in_image])


def _loader(dicts, batch=3):
    return [dicts[i : i + batch] for i in range(0, len(dicts), batch)]


def test_explicit_galleries_run_only_their_images_and_an_oracle_scores_one(tmp_path):
    records = register_world()
    dicts = build_person_search_test_dicts("evtest_gallery", ["evtest_query_G8"])
    num_queries = sum(1 for d in dicts if "query_keys" in d)
    model = OracleConditionedDetector()
    evaluator = PersonSearchEvaluator("evtest_gallery", ["evtest_query_G8"], output_dir=str(tmp_path), distributed=False)
    metrics = query_centric_inference(model, _loader(dicts), evaluator)["person_search"]
    assert sorted(image for image, _ in model.calls) == sorted(r["image_id"] for r in records[4:])  # G8 galleries
    assert all(len(pids) == num_queries for _, pids in model.calls)
    assert metrics["evtest_query_G8/mAP"] == pytest.approx(1.0) and metrics["evtest_query_G8/top1"] == 1.0
    assert not any(key.startswith("det/") for key in metrics)  # no query-independent detections
    assert (tmp_path / "person_search_metrics.json").is_file()


def test_generic_galleries_run_every_image_and_a_blind_detector_scores_zero():
    register_world()
    dicts = build_person_search_test_dicts("evtest_gallery", ["evtest_query_generic"])
    model = OracleConditionedDetector(blind=True)
    evaluator = PersonSearchEvaluator("evtest_gallery", ["evtest_query_generic"], distributed=False)
    metrics = query_centric_inference(model, _loader(dicts), evaluator)["person_search"]
    assert len(model.calls) == 12
    assert metrics["evtest_query_generic/mAP"] == 0.0 and metrics["evtest_query_generic/top10"] == 0.0
    assert np.isfinite(metrics["evtest_query_generic/gt_mAP"]) and metrics["evtest_query_generic/gt_mAP"] > 0.5



def _rank_parts(evaluator):
    return evaluator._gallery, evaluator._gt_embeddings, evaluator._query_embeddings, evaluator._conditioned


def test_per_query_detections_from_several_ranks_are_merged(monkeypatch):
    """Two ranks each search half of the gallery for every query: the merged evaluation equals one rank's."""
    from ps_plugin.evaluation import evaluator as evaluator_module

    register_world()
    names = ["evtest_query_generic"]
    dicts = build_person_search_test_dicts("evtest_gallery", names)
    single = PersonSearchEvaluator("evtest_gallery", names, distributed=False)
    expected = query_centric_inference(OracleConditionedDetector(), _loader(dicts), single)["person_search"]

    queries = [d for d in dicts if "query_keys" in d]
    gallery = [d for d in dicts if "query_keys" not in d]
    ranks = []
    for part in (gallery[::2], gallery[1::2]):
        rank = PersonSearchEvaluator("evtest_gallery", names, distributed=True)
        monkeypatch.setattr(rank, "evaluate", lambda: None)  # collect only; the merge is evaluated below
        query_centric_inference(OracleConditionedDetector(), _loader(queries + part), rank)
        assert all(len(per_image) == 6 for per_image in rank._conditioned.values())
        ranks.append(rank)
    monkeypatch.setattr(evaluator_module.comm, "synchronize", lambda: None)
    monkeypatch.setattr(evaluator_module.comm, "is_main_process", lambda: True)
    monkeypatch.setattr(evaluator_module.comm, "gather", lambda parts, dst=0: [_rank_parts(r) for r in ranks])
    merged = PersonSearchEvaluator.evaluate(ranks[0])["person_search"]
    assert merged == pytest.approx(expected)
