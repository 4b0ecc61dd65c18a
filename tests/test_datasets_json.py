"""person_id COCO json loader: format rules on a fixture, real PRW json counts."""
import json
from pathlib import Path

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ps_plugin.data.datasets import register_person_search_json
from ps_plugin.data.datasets.person_search_json import load_person_search_json

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_json(path, images, annotations, categories=({"id": 1, "name": "person"},)):
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": list(categories)}))
    return str(path)


def ann(ann_id, image_id, bbox, person_id, **extra):
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": bbox, "iscrowd": 0,
            "area": bbox[2] * bbox[3], "person_id": person_id, **extra}


@pytest.fixture
def pid_json(tmp_path):
    images = [
        {"id": 7, "file_name": "c3s1_000100.jpg", "width": 200, "height": 100},
        {"id": 2, "file_name": "scene.jpg", "width": 200, "height": 100, "camera_id": 9},
        {"id": 5, "file_name": "empty.jpg", "width": 50, "height": 50},
    ]
    annotations = [
        ann(0, 7, [10, 20, 30, 40], 4),
        ann(1, 7, [190, 0, 30, 40], -2),         # clipped to x2 = 200
        ann(2, 2, [0, 0, 10, 10], -1),
        ann(3, 2, [5, 5, 10, 10], 3, iscrowd=1),  # crowd: dropped
        ann(4, 2, [300, 0, 10, 10], 1),          # outside the image: dropped
    ]
    return write_json(tmp_path / "pid.json", images, annotations)


def test_fixture_records(pid_json):
    records = load_person_search_json(pid_json, "/data/frames")
    assert [r["image_id"] for r in records] == ["scene.jpg", "empty.jpg", "c3s1_000100.jpg"]  # by json id
    scene, empty, prw_style = records
    assert prw_style["file_name"] == "/data/frames/c3s1_000100.jpg"
    assert (prw_style["height"], prw_style["width"]) == (100, 200)
    assert prw_style["camera_id"] == 3                   # parsed from c3s1_
    assert scene["camera_id"] == 9                       # json field wins
    assert empty["camera_id"] == -1 and empty["annotations"] == []
    np.testing.assert_allclose([a["bbox"] for a in prw_style["annotations"]], [[10, 20, 40, 60], [190, 0, 200, 40]])
    assert [a["person_id"] for a in prw_style["annotations"]] == [4, -1]
    assert all(a["bbox_mode"] == BoxMode.XYXY_ABS and a["category_id"] == 0 for a in prw_style["annotations"])
    assert [a["person_id"] for a in scene["annotations"]] == [-1]


def test_camera_regex_can_be_disabled(pid_json):
    records = load_person_search_json(pid_json, "", camera_regex=None)
    assert [r["camera_id"] for r in records] == [9, -1, -1]


def test_missing_person_id_is_an_error_naming_the_file(tmp_path):
    annotation = ann(0, 1, [0, 0, 5, 5], 0)
    del annotation["person_id"]
    path = write_json(tmp_path / "bad.json", [{"id": 1, "file_name": "a.jpg", "width": 9, "height": 9}], [annotation])
    with pytest.raises(ValueError, match="bad.json.*person_id"):
        load_person_search_json(path, "")


def test_no_person_category_is_an_error(tmp_path):
    path = write_json(tmp_path / "cats.json", [], [], categories=[{"id": 1, "name": "car"}])
    with pytest.raises(ValueError, match="cats.json.*'person'"):
        load_person_search_json(path, "")


def test_registration_is_lazy(tmp_path):
    missing = str(tmp_path / "absent.json")
    register_person_search_json("test_json_lazy", missing, str(tmp_path), protocol="prw")
    try:
        assert MetadataCatalog.get("test_json_lazy").protocol == "prw"
        with pytest.raises(FileNotFoundError, match="absent.json"):
            DatasetCatalog.get("test_json_lazy")
    finally:
        DatasetCatalog.remove("test_json_lazy")
        MetadataCatalog.remove("test_json_lazy")


def test_registered_records_are_tagged(pid_json):
    register_person_search_json("test_json_tagged", pid_json, "/img", domain="target")
    try:
        records = DatasetCatalog.get("test_json_tagged")
        assert {(r["dataset_name"], r["domain"]) for r in records} == {("test_json_tagged", "target")}
        assert MetadataCatalog.get("test_json_tagged").num_pids == 1
    finally:
        DatasetCatalog.remove("test_json_tagged")
        MetadataCatalog.remove("test_json_tagged")


@pytest.mark.parametrize("split, n_images, n_boxes, n_ids", [("train", 5704, 18048, 483), ("test", 6112, 25062, 544)])
def test_real_prw_json(split, n_images, n_boxes, n_ids):
    json_file = SHARED_DATA / "prw" / f"{split}_pid.json"
    if not json_file.exists():
        pytest.skip(f"{json_file} absent")
    records = load_person_search_json(str(json_file), "frames")
    assert len(records) == n_images
    assert sum(len(r["annotations"]) for r in records) == n_boxes
    assert len({a["person_id"] for r in records for a in r["annotations"]} - {-1}) == n_ids
    assert min(a["person_id"] for r in records for a in r["annotations"]) == -1
    assert {r["camera_id"] for r in records} == {1, 2, 3, 4, 5, 6}
