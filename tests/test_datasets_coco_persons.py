"""COCO-Persons: person category only, crowd boxes dropped, ids -1 or one per box, lazy root."""
import json

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from ps_plugin.data.datasets.coco_persons import COCO_PERSONS_SPLITS, load_coco_persons, register_all_coco_persons


def box(ann_id, image_id, category_id, bbox, iscrowd=0):
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox,
            "iscrowd": iscrowd, "area": bbox[2] * bbox[3], "segmentation": []}


def write_instances(path):
    """Image 1: two persons, a crowd person box and a dog; image 2: only a dog; image 3: one person."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in (1, 2, 3)],
        "annotations": [
            box(10, 1, 1, [10, 10, 20, 50]),
            box(11, 1, 1, [100, 50, 30, 60]),
            box(12, 1, 1, [0, 0, 300, 200], iscrowd=1),
            box(13, 1, 18, [200, 200, 40, 40]),
            box(14, 2, 18, [5, 5, 40, 40]),
            box(15, 3, 1, [1.5, 2.5, 10, 20]),
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    }))
    return str(path)


@pytest.fixture
def instances_json(tmp_path):
    return write_instances(tmp_path / "instances.json")


def test_persons_only_without_identities(instances_json):
    records = load_coco_persons(instances_json, "/coco/val2017")
    assert [r["image_id"] for r in records] == ["000000000001.jpg", "000000000002.jpg", "000000000003.jpg"]
    assert [len(r["annotations"]) for r in records] == [2, 0, 1]
    np.testing.assert_allclose([a["bbox"] for a in records[0]["annotations"]], [[10, 10, 30, 60], [100, 50, 130, 110]])
    np.testing.assert_allclose(records[2]["annotations"][0]["bbox"], [1.5, 2.5, 11.5, 22.5])
    assert {a["person_id"] for r in records for a in r["annotations"]} == {-1}
    assert {r["camera_id"] for r in records} == {-1}
    assert records[0]["file_name"] == "/coco/val2017/000000000001.jpg"


def test_unique_ids_and_drop_empty(instances_json):
    records = load_coco_persons(instances_json, "", unique_ids=True, drop_empty=True)
    assert [r["image_id"] for r in records] == ["000000000001.jpg", "000000000003.jpg"]
    assert [a["person_id"] for r in records for a in r["annotations"]] == [0, 1, 2]


def reregister_coco_persons():
    for name in COCO_PERSONS_SPLITS:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    register_all_coco_persons()


@pytest.fixture
def fresh_coco_persons():
    """Fresh registrations (num_pids unset), restored to the builtin state afterwards."""
    reregister_coco_persons()
    yield
    reregister_coco_persons()


def test_registered_splits_resolve_root_at_load_time(tmp_path, monkeypatch, fresh_coco_persons):
    write_instances(tmp_path / "coco" / "annotations" / "instances_train2017.json")
    assert list(COCO_PERSONS_SPLITS) == ["coco_persons_train", "coco_persons_val", "coco_persons_train_inst"]
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))  # set after registration
    train = DatasetCatalog.get("coco_persons_train")
    assert train[0]["file_name"] == str(tmp_path / "coco" / "train2017" / "000000000001.jpg")
    assert MetadataCatalog.get("coco_persons_train").num_pids == 0
    inst = DatasetCatalog.get("coco_persons_train_inst")
    assert [a["person_id"] for r in inst for a in r["annotations"]] == [0, 1, 2]
    assert MetadataCatalog.get("coco_persons_train_inst").num_pids == 3
    with pytest.raises(FileNotFoundError, match="instances_val2017.json"):
        DatasetCatalog.get("coco_persons_val")
