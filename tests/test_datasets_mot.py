"""MOT sequences and the realmini split: fixture sequences in MOT format, real realmini counts."""
from pathlib import Path

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from ps_plugin.data.datasets.common import count_person_ids
from ps_plugin.data.datasets.mot import (
    load_mot_sequence,
    load_realmini_split,
    realmini_root,
    register_mot_sequences,
    register_realmini,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REALMINI = SHARED_DATA / "realmini"


def write_sequence(seq_dir, gt_rows, n_frames, image_dir="img1", pattern="{:06d}.jpg", size=(64, 48)):
    """A MOT sequence: n_frames solid images (width, height = size) and gt.txt from `gt_rows`."""
    (seq_dir / image_dir).mkdir(parents=True)
    for frame in range(1, n_frames + 1):
        Image.new("RGB", size).save(seq_dir / image_dir / pattern.format(frame))
    (seq_dir / "gt.txt").write_text("".join(",".join(str(v) for v in row) + "\n" for row in gt_rows))
    return seq_dir


@pytest.fixture
def sequence(tmp_path):
    """4 frames; frame 2 has no row, frame 3 has a flag-0 row, a box crosses the right border."""
    rows = [
        (1, 5, 10, 5, 20, 30, 1, 1, 1.0),
        (1, 9, 50, 0, 30, 30, 1, 1, 1.0),   # clipped to x2 = 64
        (3, 5, 12, 6, 20, 30, 1, 1, 1.0),
        (3, 9, 40, 4, 10, 10, 0, 1, 1.0),   # flag 0: ignored
        (4, 9, 30, 4, 10, 10, 1, 1, 1.0),
    ]
    return write_sequence(tmp_path / "seqA", rows, n_frames=4)


def test_sequence_records(sequence):
    records = load_mot_sequence(sequence, camera_id=2)
    assert [r["image_id"] for r in records] == [f"seqA/00000{i}.jpg" for i in (1, 2, 3, 4)]
    assert [r["frame"] for r in records] == [1, 2, 3, 4]
    assert [len(r["annotations"]) for r in records] == [2, 0, 1, 1]
    assert [[a["person_id"] for a in r["annotations"]] for r in records] == [[5, 9], [], [5], [9]]
    np.testing.assert_allclose([a["bbox"] for a in records[0]["annotations"]], [[10, 5, 30, 35], [50, 0, 64, 30]])
    assert {(r["height"], r["width"], r["camera_id"], r["sequence"]) for r in records} == {(48, 64, 2, "seqA")}
    assert records[1]["file_name"] == str(sequence / "img1" / "000002.jpg")


def test_img_folder_seqinfo_and_six_column_rows(tmp_path):
    seq = write_sequence(tmp_path / "seqB", [(2, 1, 0, 0, 5, 5)], n_frames=2, image_dir="img", pattern="frame_{:04d}.jpg")
    (seq / "seqinfo.ini").write_text("[Sequence]\nimWidth=640\nimHeight=480\n")
    records = load_mot_sequence(seq, sequence_name="b")
    assert [r["image_id"] for r in records] == ["b/frame_0001.jpg", "b/frame_0002.jpg"]
    assert (records[0]["height"], records[0]["width"]) == (480, 640)
    assert [len(r["annotations"]) for r in records] == [0, 1]


def test_bad_sequences_name_the_problem(tmp_path):
    seq = write_sequence(tmp_path / "seqC", [(7, 1, 0, 0, 5, 5, 1)], n_frames=2)
    with pytest.raises(ValueError, match=r"gt.txt has rows for frames without an image.*\[7\]"):
        load_mot_sequence(seq)
    (tmp_path / "noimg").mkdir()
    with pytest.raises(FileNotFoundError, match="noimg.*img1"):
        load_mot_sequence(tmp_path / "noimg")


def test_register_mot_sequences_offsets_ids(tmp_path, sequence):
    other = write_sequence(tmp_path / "seqD", [(1, 5, 0, 0, 10, 10, 1)], n_frames=1)
    register_mot_sequences("test_mot_two", [str(sequence), str(other)])
    try:
        records = DatasetCatalog.get("test_mot_two")
        pids = [(r["camera_id"], a["person_id"]) for r in records for a in r["annotations"]]
        assert pids == [(0, 0), (0, 1), (0, 0), (0, 1), (1, 2)]  # track 5 of seqD is a new person
        assert MetadataCatalog.get("test_mot_two").num_pids == 3
    finally:
        DatasetCatalog.remove("test_mot_two")
        MetadataCatalog.remove("test_mot_two")


@pytest.fixture
def fake_realmini(tmp_path):
    """pets09_s3mf1: 10 frames, track 1 everywhere, track 2 only in frames 7-10 (test only), track 3
    tall in frame 7 but absent from the gallery; tud_campus: 5 frames, track 4 small in test."""
    pets = [(f, 1, 2, 2, 10, 30, -1) for f in range(1, 11)] + [(f, 2, 30, 2, 10, 30, -1) for f in range(7, 11)]
    pets += [(7, 3, 40, 2, 10, 30, -1)]
    tud = [(f, 4, 2, 2, 10, 10 if f > 3 else 30, 1) for f in range(1, 6)]
    write_sequence(tmp_path / "realmini" / "pets09_s3mf1", pets, 10, "img", "frame_{:04d}.jpg")
    write_sequence(tmp_path / "realmini" / "tud_campus", tud, 5)
    return tmp_path / "realmini"


def test_realmini_split_on_fixture(fake_realmini):
    split = load_realmini_split(str(fake_realmini), min_frame_gap=2, min_query_height=20)
    assert [r["image_id"] for r in split["train"]] == [f"pets09_s3mf1/frame_{i:04d}.jpg" for i in range(1, 7)] + [
        f"tud_campus/{i:06d}.jpg" for i in range(1, 4)]
    assert [r["frame"] for r in split["gallery"]] == [7, 8, 9, 10, 4, 5]
    # train ids contiguous: pets track 1 -> 0, tud track 4 -> 1; test-only pets tracks 2, 3 -> 2, 3
    assert sorted({a["person_id"] for r in split["train"] for a in r["annotations"]}) == [0, 1]
    assert sorted({a["person_id"] for r in split["gallery"] for a in r["annotations"]}) == [0, 1, 2, 3]
    queries = split["query"]
    assert [(q["image_id"], q["annotations"][0]["person_id"], q["query_index"]) for q in queries] == [
        ("pets09_s3mf1/frame_0007.jpg", 0, 0), ("pets09_s3mf1/frame_0007.jpg", 2, 1)]  # 3: no positive; tud: too small
    gallery = queries[0]["gallery"]
    assert gallery["image_ids"] == ["pets09_s3mf1/frame_0009.jpg", "pets09_s3mf1/frame_0010.jpg"]
    assert gallery["boxes"].dtype == np.float32 and gallery["boxes"].shape == (2, 4)
    np.testing.assert_allclose(gallery["boxes"], [[2, 2, 12, 32], [2, 2, 12, 32]])
    assert [len(q["annotations"]) for q in queries] == [1, 1]
    assert {q["camera_id"] for q in queries} == {0}


def test_realmini_gallery_marks_absence_with_nan(fake_realmini):
    gt = fake_realmini / "pets09_s3mf1" / "gt.txt"
    gt.write_text("".join(l + "\n" for l in gt.read_text().splitlines() if not l.startswith("9,1,")))
    query = load_realmini_split(str(fake_realmini), min_frame_gap=2, min_query_height=20)["query"][0]
    assert np.isnan(query["gallery"]["boxes"][0]).all() and not np.isnan(query["gallery"]["boxes"][1]).any()


def test_realmini_root_resolution(fake_realmini, tmp_path, monkeypatch):
    monkeypatch.setenv("PS_REALMINI_ROOT", str(fake_realmini))
    assert realmini_root() == str(fake_realmini)
    monkeypatch.delenv("PS_REALMINI_ROOT")
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    assert realmini_root() == str(tmp_path / "realmini")
    with pytest.raises(FileNotFoundError, match="nowhere.*PS_REALMINI_ROOT"):
        realmini_root(str(tmp_path / "nowhere"))


def test_register_realmini_is_lazy_and_sets_metadata(tmp_path):
    for name in ("realmini_train", "realmini_gallery", "realmini_query"):
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    try:
        register_realmini(root=str(tmp_path / "absent"))
        assert MetadataCatalog.get("realmini_query").gallery_dataset == "realmini_gallery"
        assert MetadataCatalog.get("realmini_query").protocol == "generic"
        assert MetadataCatalog.get("realmini_gallery").query_datasets == ["realmini_query"]
        with pytest.raises(FileNotFoundError, match="absent"):
            DatasetCatalog.get("realmini_train")
    finally:
        for name in ("realmini_train", "realmini_gallery", "realmini_query"):
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register_realmini()


@pytest.mark.parametrize("sequence_name, n_frames, n_ids, n_boxes", [("pets09_s3mf1", 107, 7, 620), ("tud_campus", 71, 8, 359)])
def test_real_sequences(sequence_name, n_frames, n_ids, n_boxes):
    if not REALMINI.exists():
        pytest.skip(f"{REALMINI} absent")
    records = load_mot_sequence(REALMINI / sequence_name)
    assert len(records) == n_frames
    assert count_person_ids(records) == n_ids
    assert sum(len(r["annotations"]) for r in records) == n_boxes  # no flag-0 row in either gt.txt


def test_real_realmini_split():
    if not REALMINI.exists():
        pytest.skip(f"{REALMINI} absent")
    split = load_realmini_split(str(REALMINI))
    train_ids = {r["image_id"] for r in split["train"]}
    gallery_ids = {r["image_id"] for r in split["gallery"]}
    assert (len(train_ids), len(gallery_ids)) == (64 + 42, 43 + 29) and not train_ids & gallery_ids
    train_pids = {a["person_id"] for r in split["train"] for a in r["annotations"]}
    assert train_pids == set(range(14))  # 7 + 7 identities (one tud_campus track is test-only)
    frames = {r["image_id"]: r["frame"] for r in split["gallery"]}
    queries = split["query"]
    assert len(queries) == 7  # tud_campus's 29 test frames cannot hold a 30-frame gap
    for q in queries:
        gallery = q["gallery"]
        assert all(abs(frames[i] - q["frame"]) >= 30 for i in gallery["image_ids"])
        assert all(i.split("/")[0] == q["sequence"] for i in gallery["image_ids"])
        assert (~np.isnan(gallery["boxes"][:, 0])).sum() >= 1
        assert q["annotations"][0]["bbox"][3] - q["annotations"][0]["bbox"][1] >= 50
    assert len({q["annotations"][0]["person_id"] for q in queries}) == 7
