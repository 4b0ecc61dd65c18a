"""CUHK-SYSU loaders on a fixture written in the original .mat nesting, plus the real TestG100.mat."""
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from format_fixtures import write_cuhk_sysu, write_cuhk_sysu_images, write_cuhk_sysu_train
from scipy.io import savemat

import ps_plugin.data.datasets  # noqa: F401  (registration)
from ps_plugin.data.datasets.cuhk_sysu import (
    CUHK_SYSU_QUERY_SETS,
    load_cuhk_sysu_gallery,
    load_cuhk_sysu_protocol,
    load_cuhk_sysu_queries,
    load_cuhk_sysu_train,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def root(tmp_path):
    write_cuhk_sysu(str(tmp_path))
    return str(tmp_path)


def boxes_and_pids(record):
    return [a["bbox"] for a in record["annotations"]], [a["person_id"] for a in record["annotations"]]


def test_train_records_boxes_and_contiguous_ids(root):
    records = {r["image_id"]: r for r in load_cuhk_sysu_train(root)}
    assert list(records) == ["s1.jpg", "s2.jpg", "s3.jpg"]
    s1, s2, s3 = records["s1.jpg"], records["s2.jpg"], records["s3.jpg"]
    assert (s1["height"], s1["width"], s2["height"], s2["width"]) == (320, 400, 150, 200)
    assert s1["file_name"] == os.path.join(root, "cuhk_sysu", "Image", "SSM", "s1.jpg")
    assert boxes_and_pids(s1) == ([[50, 40, 350, 290], [5, 5, 25, 45]], [0, -1])
    x1, y1, x2, y2 = s1["annotations"][0]["bbox"]
    assert (x2 - x1) * (y2 - y1) == 75000  # w * h of a uint16 box, cast before arithmetic
    # the box reaching past the 200x150 image is clipped, the one outside it is dropped
    assert boxes_and_pids(s2) == ([[10, 10, 40, 70], [60, 20, 100, 120], [180, 100, 200, 150]], [1, 0, -1])
    assert s3["annotations"] == [] and s3["camera_id"] == -1


def test_gallery_labels_the_query_identities(root):
    records = {r["image_id"]: r for r in load_cuhk_sysu_gallery(root)}
    assert list(records) == ["s4.jpg", "s5.jpg", "s6.jpg", "s7.jpg"]
    assert boxes_and_pids(records["s4.jpg"]) == ([[20, 30, 60, 120], [100, 20, 130, 90]], [10, -1])
    assert boxes_and_pids(records["s5.jpg"]) == ([[60, 40, 360, 290], [10, 10, 40, 70]], [10, 11])
    assert boxes_and_pids(records["s6.jpg"])[1] == [11]
    assert boxes_and_pids(records["s7.jpg"])[1] == [-1]


def test_query_g50_compact_gallery_with_absent_rows(root):
    queries = load_cuhk_sysu_queries(root, 50)
    assert [q["query_index"] for q in queries] == [0, 1]
    q0 = queries[0]
    assert q0["image_id"] == "s4.jpg" and (q0["height"], q0["width"]) == (320, 400)
    assert boxes_and_pids(q0) == ([[20, 30, 60, 120]], [10])
    assert q0["gallery"]["image_ids"] == ["s5.jpg", "s6.jpg", "s7.jpg"]
    boxes = q0["gallery"]["boxes"]
    assert boxes.dtype == np.float32 and boxes.shape == (3, 4)
    np.testing.assert_array_equal(boxes[0], [60, 40, 360, 290])
    assert np.isnan(boxes[1:]).all()
    assert (boxes[0, 2] - boxes[0, 0]) * (boxes[0, 3] - boxes[0, 1]) == 75000
    assert boxes_and_pids(queries[1])[1] == [11]


def test_query_g100_keeps_order_and_repeated_images(root):
    q0 = load_cuhk_sysu_queries(root, 100)[0]
    assert q0["gallery"]["image_ids"] == ["s7.jpg", "s5.jpg", "s6.jpg", "s7.jpg"]
    np.testing.assert_array_equal(np.isnan(q0["gallery"]["boxes"][:, 0]), [True, False, True, True])


def test_query_full_has_no_gallery(root):
    full, g50 = load_cuhk_sysu_queries(root, None), load_cuhk_sysu_queries(root, 50)
    assert all("gallery" not in q for q in full)
    assert [q["annotations"] for q in full] == [q["annotations"] for q in g50]


def test_protocol_without_images_keeps_raw_boxes(root):
    mat = os.path.join(root, "cuhk_sysu", "annotation", "test", "train_test", "TestG50.mat")
    q0 = load_cuhk_sysu_protocol(mat)[0]
    assert (q0["file_name"], q0["height"], q0["width"]) == ("s4.jpg", None, None)
    np.testing.assert_array_equal(q0["gallery"]["boxes"][0], [60, 40, 360, 290])


def test_registered_sets_load_through_the_catalog(root, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", root)
    queries = DatasetCatalog.get("cuhk_sysu_query_G100")
    assert len(queries) == 2 and queries[0]["dataset_name"] == "cuhk_sysu_query_G100"
    meta = MetadataCatalog.get("cuhk_sysu_query_G100")
    assert (meta.gallery_dataset, meta.protocol, meta.gallery_size) == ("cuhk_sysu_gallery", "cuhk_sysu", 100)
    assert meta.protocol_file.endswith(os.path.join("train_test", "TestG100.mat"))
    assert MetadataCatalog.get("cuhk_sysu_query_full").gallery_size == -1
    assert MetadataCatalog.get("cuhk_sysu_gallery").query_datasets == list(CUHK_SYSU_QUERY_SETS)
    assert len(DatasetCatalog.get("cuhk_sysu_train")) == 3
    assert MetadataCatalog.get("cuhk_sysu_train").num_pids == 2


def test_train_box_absent_from_images_mat_is_logged(root, caplog):
    train_mat = os.path.join(root, "cuhk_sysu", "annotation", "test", "train_test", "Train.mat")
    write_cuhk_sysu_train(train_mat, [("p1", [("s1.jpg", [50, 40, 300, 251])]), ("p2", [("s2.jpg", [10, 10, 30, 60])])])
    module_logger = logging.getLogger("ps_plugin.data.datasets.cuhk_sysu")
    module_logger.addHandler(caplog.handler)  # captured even where a logger setup stops propagation
    try:
        records = load_cuhk_sysu_train(root)
    finally:
        module_logger.removeHandler(caplog.handler)
    assert [a["person_id"] for a in records[0]["annotations"]] == [-1, -1]
    assert [a["person_id"] for a in records[1]["annotations"]] == [1, -1, -1]
    assert "Train.mat: 1 labeled box(es) match no box of Images.mat" in caplog.text


def test_missing_folder_names_the_path_and_the_readme(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cuhk_sysu.annotation.Images\.mat.*datasets/README\.md"):
        load_cuhk_sysu_train(str(tmp_path))


def test_missing_protocol_file_is_named(root):
    os.remove(os.path.join(root, "cuhk_sysu", "annotation", "test", "train_test", "TestG100.mat"))
    with pytest.raises(FileNotFoundError, match=r"TestG100\.mat"):
        load_cuhk_sysu_queries(root, 100)


def test_wrong_variable_names_the_file(root):
    images_mat = os.path.join(root, "cuhk_sysu", "annotation", "Images.mat")
    savemat(images_mat, {"Images": np.zeros((1, 1))})
    with pytest.raises(ValueError, match=r"Images\.mat.*'Img'"):
        load_cuhk_sysu_train(root)


def test_images_mat_rewritten_is_read_again(root):
    load_cuhk_sysu_train(root)
    images_mat = os.path.join(root, "cuhk_sysu", "annotation", "Images.mat")
    write_cuhk_sysu_images(images_mat, [("s1.jpg", []), ("s2.jpg", []), ("s3.jpg", []), ("s4.jpg", [])])
    os.utime(images_mat, ns=(0, 1))  # a distinct mtime even on coarse clocks
    assert [len(r["annotations"]) for r in load_cuhk_sysu_train(root)] == [0, 0, 0]


@pytest.mark.slow  # ~3 s alone (2 s of loadmat), ~6 s on a busy 2-core machine
def test_real_testg100_protocol():
    mat = SHARED_DATA / "cuhk_sysu" / "TestG100.mat"
    if not mat.exists():
        pytest.skip(f"{mat} absent")
    queries = load_cuhk_sysu_protocol(str(mat))
    assert len(queries) == 2900
    assert {len(q["gallery"]["image_ids"]) for q in queries} == {100}
    # quirks of the real file that the evaluator has to live with
    assert [q["query_index"] for q in queries if q["image_id"] in q["gallery"]["image_ids"]] == [493, 2132]
    assert sum(len(set(q["gallery"]["image_ids"])) < 100 for q in queries) == 4
    boxes = np.stack([q["gallery"]["boxes"] for q in queries])  # [2900, 100, 4]
    present = ~np.isnan(boxes[..., 0])
    assert present.sum(axis=1).min() >= 1
    areas = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    assert (areas[present] > 65535).sum() == 327  # would wrap around in uint16
    assert queries[0]["image_id"] == "s15538.jpg"
    assert queries[0]["annotations"][0]["bbox"] == [488, 90, 576, 340]
    assert queries[0]["annotations"][0]["person_id"] == 10581
