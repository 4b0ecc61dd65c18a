"""PRW loaders on a fixture written in the original on-disk format."""
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from format_fixtures import write_prw
from scipy.io import savemat

import ps_plugin.data.datasets  # noqa: F401  (registration)
from ps_plugin.data.datasets.prw import load_prw_gallery, load_prw_queries, load_prw_train, prw_camera_id


@pytest.fixture
def root(tmp_path):
    write_prw(str(tmp_path))
    return str(tmp_path)


def boxes_and_pids(record):
    return [a["bbox"] for a in record["annotations"]], [a["person_id"] for a in record["annotations"]]


def test_train_ids_contiguous_unlabeled_and_clipped(root):
    first, second = load_prw_train(root)
    assert (first["image_id"], first["camera_id"], first["height"], first["width"]) == ("c1s1_000151.jpg", 1, 120, 160)
    assert first["file_name"] == os.path.join(root, "prw", "frames", "c1s1_000151.jpg")
    # ids 5 and 12 survive cleaning (7 lies outside its frame) -> 0 and 1; -2 -> -1; 100+80 clipped to 160
    assert boxes_and_pids(first) == ([[10, 10, 30, 50], [50, 10, 70, 50], [100, 60, 160, 120]], [0, -1, 1])
    assert boxes_and_pids(second) == ([[30, 30, 50, 70]], [1])
    assert second["camera_id"] == 2


def test_gallery_keeps_prw_ids_and_empty_frames(root):
    records = {r["image_id"]: r for r in load_prw_gallery(root)}
    assert list(records) == ["c3s2_000300.jpg", "c4s1_000400.jpg", "c1s3_000500.jpg"]
    assert boxes_and_pids(records["c3s2_000300.jpg"]) == ([[10, 10, 40, 70], [60, 10, 90, 70]], [5, -1])
    assert boxes_and_pids(records["c4s1_000400.jpg"])[1] == [5, 9]
    assert records["c1s3_000500.jpg"]["annotations"] == []
    assert [r["camera_id"] for r in records.values()] == [3, 4, 1]


def test_queries_match_gallery_ids_and_cameras(root):
    queries = load_prw_queries(root)
    assert [q["query_index"] for q in queries] == [0, 1]
    assert [(q["image_id"], q["camera_id"]) for q in queries] == [("c3s2_000300.jpg", 3), ("c4s1_000400.jpg", 4)]
    assert boxes_and_pids(queries[0]) == ([[10, 10, 40, 70]], [5])
    assert boxes_and_pids(queries[1]) == ([[20, 20, 50, 80]], [9])
    assert all("gallery" not in q for q in queries)


def test_registered_sets_load_through_the_catalog(root, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", root)
    assert len(DatasetCatalog.get("prw_query")) == 2
    assert len(DatasetCatalog.get("prw_gallery")) == 3
    query_meta, gallery_meta = MetadataCatalog.get("prw_query"), MetadataCatalog.get("prw_gallery")
    assert (query_meta.gallery_dataset, query_meta.protocol) == ("prw_gallery", "prw")
    assert gallery_meta.query_datasets == ["prw_query"] and gallery_meta.num_pids == 2


def test_camera_id_from_the_name():
    assert prw_camera_id("/x/c6s2_012345.jpg") == 6
    with pytest.raises(ValueError, match="s1_000001.jpg"):
        prw_camera_id("s1_000001.jpg")


def test_missing_folder_names_the_path_and_the_readme(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"prw.frame_train\.mat.*datasets/README\.md"):
        load_prw_train(str(tmp_path))


def test_missing_annotation_file_is_named(root):
    os.remove(os.path.join(root, "prw", "annotations", "c4s1_000400.jpg.mat"))
    with pytest.raises(FileNotFoundError, match=r"c4s1_000400\.jpg\.mat"):
        load_prw_gallery(root)


def test_annotation_without_known_key_is_named(root):
    savemat(os.path.join(root, "prw", "annotations", "c3s2_000300.jpg.mat"), {"boxes": np.zeros((1, 5))})
    with pytest.raises(ValueError, match=r"c3s2_000300\.jpg\.mat.*box_new"):
        load_prw_gallery(root)


def test_malformed_query_line_is_named(root):
    with open(os.path.join(root, "prw", "query_info.txt"), "a") as query_info:
        query_info.write("9 1 2 3 c4s1_000400\n")
    with pytest.raises(ValueError, match=r"query_info\.txt:3"):
        load_prw_queries(root)
