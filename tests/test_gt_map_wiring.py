"""GT mAP wiring: the test-mode mapper gives gallery records "gt_boxes_for_reid", the baseline returns
"gt_embeddings" for them, and PersonSearchEvaluator reports "<query set>/gt_mAP" end to end."""
import shutil

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.evaluation import inference_on_dataset
from detectron2.modeling import build_model
from detectron2.structures import BoxMode
from PIL import Image

from ps_plugin.data.datasets.common import make_record, register_person_search
from ps_plugin.data.mapper import PersonSearchDatasetMapper
from ps_plugin.engine.trainer import PersonSearchTrainer
from ps_plugin.evaluation import GalleryTruth, PersonSearchEvaluator, evaluate_search, query_from_record
from test_model_baseline import tiny_model_cfg

H, W = 96, 128
BOXES = [[5, 10, 35, 90], [45, 5, 80, 85], [90, 20, 120, 95]]


def write_scene(path, seed):
    pixels = np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


def small_cfg(gt_map=True):
    cfg = tiny_model_cfg()
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 48, 64  # a 0.5 resize
    cfg.PS.EVAL.GT_MAP = gt_map
    cfg.DATALOADER.NUM_WORKERS = 0
    return cfg


def raw_record(file_name, boxes, pids, **extra):
    annotations = [{"bbox": b, "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0, "person_id": p}
                   for b, p in zip(boxes, pids)]
    return {"file_name": file_name, "image_id": "scene.png", "height": H, "width": W, "annotations": annotations,
            **extra}


def test_mapper_adds_transformed_gt_boxes_in_annotation_order(tmp_path):
    file_name = write_scene(tmp_path / "scene.png", 0)
    boxes = [[40, 10, 80, 90], [10, 20, 10, 60], [100, 4, 120, 20]]  # the second box is degenerate
    gallery_record = raw_record(file_name, boxes, [3, -1, 5])
    mapper = PersonSearchDatasetMapper(small_cfg(), is_train=False)
    view = mapper(gallery_record)
    np.testing.assert_allclose(view["gt_boxes_for_reid"].numpy(), np.array(boxes) / 2, atol=1e-4)
    assert view["gt_boxes_for_reid"].dtype == torch.float32
    assert len(view["instances"]) == 2  # the degenerate box leaves the instances, not gt_boxes_for_reid
    assert mapper(raw_record(file_name, [], []))["gt_boxes_for_reid"].shape == (0, 4)

    query = mapper(raw_record(file_name, boxes[:1], [3], query_index=0))
    assert "gt_boxes_for_reid" not in query
    np.testing.assert_allclose(query["query_boxes"].numpy(), [[20, 5, 40, 45]], atol=1e-4)
    assert "gt_boxes_for_reid" not in PersonSearchDatasetMapper(small_cfg(gt_map=False), is_train=False)(gallery_record)
    train_cfg = small_cfg()
    train_cfg.INPUT.MIN_SIZE_TRAIN, train_cfg.INPUT.MAX_SIZE_TRAIN = (48,), 64
    assert "gt_boxes_for_reid" not in PersonSearchDatasetMapper(train_cfg, is_train=True)(gallery_record)


@pytest.fixture(scope="module")
def gt_map_world(tmp_path_factory):
    """Gallery g0, g1 (a pixel copy of g0), g2; queries: g0's two labeled persons (generic protocol)."""
    root = tmp_path_factory.mktemp("gt_map")
    g0 = write_scene(root / "g0.png", 1)
    shutil.copy(g0, root / "g1.png")
    g2 = write_scene(root / "g2.png", 2)
    pids = {"g0.png": [1, 2, -1], "g1.png": [1, 2, -1], "g2.png": [3, -1, 4]}
    gallery = [make_record(str(root / name), name, H, W, np.array(BOXES, float), p, camera_id=i)
               for i, (name, p) in enumerate(pids.items())]
    queries = [{**gallery[0], "annotations": [a], "query_index": i}
               for i, a in enumerate(gallery[0]["annotations"][:2])]
    if "gtmap_test_gallery" not in DatasetCatalog.list():
        register_person_search("gtmap_test_gallery", lambda: [dict(r) for r in gallery],
                               query_datasets=["gtmap_test_query"])
        register_person_search("gtmap_test_query", lambda: [dict(q) for q in queries],
                               gallery_dataset="gtmap_test_gallery", protocol="generic")
    return gallery


def test_baseline_gt_embeddings_give_gt_map_end_to_end(gt_map_world, tmp_path):
    cfg = small_cfg()
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    loader = PersonSearchTrainer.build_test_loader(cfg, "gtmap_test_gallery", ["gtmap_test_query"])
    evaluator = PersonSearchEvaluator(cfg, "gtmap_test_gallery", ["gtmap_test_query"], output_dir=str(tmp_path),
                                      distributed=False)
    metrics = inference_on_dataset(model, loader, evaluator)["person_search"]

    assert {len(e) for e in evaluator._gt_embeddings.values()} == {3} and len(evaluator._gt_embeddings) == 3
    # each query's only positive is its own box in g1, a pixel copy of the query image: the GT-box
    # embedding equals the query embedding (same resize for boxes and pixels), so it ranks first
    for query_index in range(2):
        np.testing.assert_allclose(evaluator._query_embeddings[("gtmap_test_query", query_index)],
                                   evaluator._gt_embeddings["g1.png"][query_index], atol=1e-5)
    assert metrics["gtmap_test_query/gt_mAP"] == pytest.approx(1.0)
    # "mAP" is the search over the model's own detections, not over the GT boxes: the untrained
    # detector's search mAP is far below the GT mAP of 1, so mixing up their inputs would show
    queries = [query_from_record(r, evaluator._query_embeddings[("gtmap_test_query", r["query_index"])])
               for r in DatasetCatalog.get("gtmap_test_query")]
    detected = evaluate_search(evaluator._gallery, queries, GalleryTruth.from_records(gt_map_world),
                               **evaluator.search_options).summary()["mAP"]
    assert detected < 0.5
    assert metrics["gtmap_test_query/mAP"] == pytest.approx(detected)
