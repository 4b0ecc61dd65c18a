"""Hybrid pre-training's datasets, each from a fixture in its real on-disk layout: Market-1501,
CUHK03-NP (the original .mat: test_datasets_cuhk03_mat.py), MSMT17 (V1 and V2), an unlabelled
LUPerson-style folder, CrowdHuman `.odgt`, ECP JSON (its tags), and crops of a registered MOT set."""
import json

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from format_fixtures import write_cuhk03_mat, write_jpg
from ps_plugin.data.datasets.crowdhuman import CROWDHUMAN_SPLITS, load_crowdhuman, register_all_crowdhuman
from ps_plugin.data.datasets.eurocity import ECP_SETTINGS, ECP_SPLITS, load_ecp, register_all_ecp
from ps_plugin.data.datasets.crops import CROP_BOX, INSTANCE_IDS, load_unlabelled_crop_folder
from ps_plugin.data.datasets.cuhk03 import register_cuhk03_mat, register_cuhk03_np
from ps_plugin.data.datasets.luperson import register_luperson
from ps_plugin.data.datasets.market1501 import load_market_style_folder, register_market1501
from ps_plugin.data.datasets.msmt17 import load_msmt17, register_msmt17
from ps_plugin.data.datasets.mot import register_mot_sequences
from ps_plugin.data.datasets.scene_crops import load_scene_crops
from test_datasets_cuhk03_mat import DETECTED, LABELED, TESTSETS
from test_datasets_mot import write_sequence

MARKET_FILES = {  # name -> (width, height)
    "0002_c1s1_000451_03.jpg": (64, 128),
    "0002_c2s1_000301_01.jpg": (60, 120),
    "0007_c3s3_077419_03.jpg": (64, 128),
    "-1_c1s1_000401_03.jpg": (40, 90),       # junk: skipped
    "0000_c6s1_002976_07.jpg": (40, 90),     # distractor: skipped
}


def _pids(records):
    return [a["person_id"] for r in records for a in r["annotations"]]


def write_market(folder):
    for name, (w, h) in MARKET_FILES.items():
        write_jpg(str(folder / name), w, h)
    return folder


def test_market_folder_keeps_identities_renumbered_and_skips_junk(tmp_path):
    records = load_market_style_folder(str(write_market(tmp_path / "market1501" / "bounding_box_train")))
    assert [r["image_id"] for r in records] == ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c3s3_077419_03.jpg"]
    assert _pids(records) == [0, 0, 1]
    assert [r["camera_id"] for r in records] == [0, 1, 2]
    assert records[1][CROP_BOX] == [0.0, 0.0, 60.0, 120.0]
    assert records[1]["annotations"][0]["bbox"] == [0.0, 0.0, 60.0, 120.0]
    assert not any(r.get(INSTANCE_IDS) for r in records)


def test_market_style_name_errors_name_the_file(tmp_path):
    write_jpg(str(tmp_path / "crops" / "person.jpg"), 10, 20)
    with pytest.raises(ValueError, match="person.jpg' is not named like a Market-1501 crop"):
        load_market_style_folder(str(tmp_path / "crops"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no"):
        load_market_style_folder(str(tmp_path / "empty"))


def test_msmt17_v1_and_v2_list_layouts(tmp_path):
    lines = ["0000/0000_000_01_0303morning_0015_0.jpg 0", "0000/0000_001_05_0303noon_0042_1.jpg 0",
             "0003/0003_000_15_0113afternoon_0301_0.jpg 3"]
    for version, image_dir in (("v1", "train"), ("v2", "mask_train_v2")):
        base = tmp_path / version
        for line in lines:
            write_jpg(str(base / image_dir / line.split()[0]), 30, 80)
        (base / "list_train.txt").write_text("\n".join(lines) + "\n")
        records = load_msmt17(str(base))
        assert _pids(records) == [0, 0, 1]
        assert [r["camera_id"] for r in records] == [0, 4, 14]
        assert records[2]["file_name"] == str(base / image_dir / "0003" / "0003_000_15_0113afternoon_0301_0.jpg")
    (tmp_path / "v1" / "list_train.txt").write_text("0000/0000_000_01_0303morning_0015_0.jpg\n")
    with pytest.raises(ValueError, match=r"list_train.txt:1: expected `<image path> <person id>`"):
        load_msmt17(str(tmp_path / "v1"))


def test_unlabelled_folder_gives_one_identity_per_crop(tmp_path):
    for name in ("a/1.jpg", "a/2.png", "b/3.jpg"):
        write_jpg(str(tmp_path / "luperson" / name), 20, 50)
    (tmp_path / "luperson" / "notes.txt").write_text("not an image")
    records = load_unlabelled_crop_folder(str(tmp_path / "luperson"))
    assert [r["image_id"] for r in records] == ["a/1.jpg", "a/2.png", "b/3.jpg"]
    assert _pids(records) == [0, 1, 2]
    assert all(r[INSTANCE_IDS] for r in records)


def write_crowdhuman(base):
    entries = [
        {"ID": "273271,c9db000d5146c15", "gtboxes": [
            {"tag": "person", "fbox": [10, 20, 30, 60], "vbox": [10, 20, 30, 40], "extra": {"box_id": 0, "occ": 0}},
            {"tag": "person", "fbox": [70, -10, 40, 80], "extra": {"box_id": 1, "ignore": 0}},  # clipped at y = 0
            {"tag": "person", "fbox": [5, 5, 10, 10], "extra": {"box_id": 2, "ignore": 1}},    # ignore region
            {"tag": "mask", "fbox": [50, 50, 20, 20], "extra": {"box_id": 3, "ignore": 1}},    # crowd mask
        ]},
        {"ID": "284193,faa9000f2678b5e", "gtboxes": [{"tag": "person", "fbox": [1, 2, 3, 4], "extra": {"box_id": 0}}]},
        {"ID": "empty,0", "gtboxes": []},
    ]
    for entry in entries:
        write_jpg(str(base / "Images" / f"{entry['ID']}.jpg"), 100, 80)
    (base / "annotation_train.odgt").write_text("".join(json.dumps(e) + "\n" for e in entries))
    return base


def test_crowdhuman_full_boxes_ignore_regions_and_one_identity_per_box(tmp_path):
    base = write_crowdhuman(tmp_path / "crowdhuman")
    records = load_crowdhuman(str(base / "annotation_train.odgt"), str(base / "Images"))
    assert [r["image_id"] for r in records] == ["273271,c9db000d5146c15", "284193,faa9000f2678b5e", "empty,0"]
    assert [a["bbox"] for a in records[0]["annotations"]] == [[10, 20, 40, 80], [70, 0, 100, 70]]
    np.testing.assert_array_equal(records[0]["ignore_regions"], [[5, 5, 15, 15], [50, 50, 70, 70]])
    assert records[2]["ignore_regions"].shape == (0, 4)
    assert _pids(records) == [0, 1, 2]
    assert all(r[INSTANCE_IDS] and (r["height"], r["width"]) == (80, 100) for r in records)
    (base / "annotation_train.odgt").write_text('{"ID": "x"}\n')
    with pytest.raises(ValueError, match="annotation_train.odgt:1: a CrowdHuman entry needs"):
        load_crowdhuman(str(base / "annotation_train.odgt"), str(base / "Images"))


def _ecp_box(identity, box, tags=()):
    return {"identity": identity, "x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3], "tags": list(tags), "children": []}


# One child per tag path (ECP_TAGGED_ROLES: its role in the "all" setting, in "reasonable", and with
# depictions "background" / "as_labelled" where it differs from "ignore"); heights 30 px unless said.
ECP_TAGGED = [
    _ecp_box("pedestrian", [0, 0, 10, 30], ["depiction"]),
    _ecp_box("person-group-far-away", [20, 0, 40, 10], ["depiction"]),
    _ecp_box("pedestrian", [40, 0, 50, 30], ["occluded>80"]),
    _ecp_box("rider", [50, 0, 60, 30], ["truncated>40"]),
    _ecp_box("pedestrian", [60, 0, 70, 30], ["sitting-lying"]),
    _ecp_box("pedestrian", [70, 0, 80, 30], ["behind-glass", "unsure_orientation"]),
    _ecp_box("pedestrian", [80, 0, 90, 45], ["skating", "unsure_orientation"]),
    _ecp_box("pedestrian", [90, 0, 95, 15]),   # 15 px
    _ecp_box("pedestrian", [0, 40, 10, 65]),   # 25 px
]


def write_ecp(base, time="day", split="train"):
    """Two Berlin frames and two Zurich frames of ECP in its released layout (zurich_00008: ECP_TAGGED)."""
    frames = {
        "berlin/berlin_00001": [
            {"identity": "pedestrian", "x0": 10, "y0": 20, "x1": 40, "y1": 70, "tags": ["occluded>40"], "children": []},
            {"identity": "rider", "x0": 60, "y0": 10, "x1": 80, "y1": 50, "tags": [],
             "children": [{"identity": "bicycle", "x0": 55, "y0": 30, "x1": 90, "y1": 60, "tags": []}]},
            {"identity": "person-group-far-away", "x0": 0, "y0": 0, "x1": 12, "y1": 8, "tags": [], "children": []},
            {"identity": "rider+vehicle-group-far-away", "x0": 85, "y0": 0, "x1": 100, "y1": 9, "tags": [], "children": []},
            {"identity": "motorbike-group", "x0": 20, "y0": 60, "x1": 50, "y1": 80, "tags": [], "children": []},
        ],
        "berlin/berlin_00002": [],
        "zurich/zurich_00007": [
            {"identity": "pedestrian", "x0": 90, "y0": 30, "x1": 130, "y1": 90, "tags": ["truncated>10"], "children": []},
        ],
        "zurich/zurich_00008": ECP_TAGGED,
    }
    for city_name, children in frames.items():
        write_jpg(str(base / time / "img" / split / f"{city_name}.png"), 100, 80)
        label = base / time / "labels" / split / f"{city_name}.json"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(json.dumps({"identity": "frame", "imagewidth": 100, "imageheight": 80, "children": children}))
    return base


def test_ecp_persons_riders_far_away_groups_and_one_identity_per_box(tmp_path):
    base = write_ecp(tmp_path / "ECP")
    records = load_ecp(str(base / "day" / "labels" / "train"), str(base / "day" / "img" / "train"))
    assert [r["image_id"] for r in records] == [
        "berlin/berlin_00001", "berlin/berlin_00002", "zurich/zurich_00007", "zurich/zurich_00008",
    ]
    assert records[0]["file_name"] == str(base / "day" / "img" / "train" / "berlin" / "berlin_00001.png")
    # The pedestrian and the rider (not its bicycle, nor the motorbike group); the far-away groups are ignored.
    assert [a["bbox"] for a in records[0]["annotations"]] == [[10, 20, 40, 70], [60, 10, 80, 50]]
    np.testing.assert_array_equal(records[0]["ignore_regions"], [[0, 0, 12, 8], [85, 0, 100, 9]])
    assert records[1]["annotations"] == [] and records[1]["ignore_regions"].shape == (0, 4)
    assert [a["bbox"] for a in records[2]["annotations"]] == [[90, 30, 100, 80]]  # clipped to the 100 x 80 image
    assert _pids(records) == [0, 1, 2, 3, 4, 5]
    assert all(r[INSTANCE_IDS] and (r["height"], r["width"]) == (80, 100) for r in records)
    (base / "day" / "labels" / "train" / "zurich" / "zurich_00007.json").write_text('{"identity": "seqlist"}')
    with pytest.raises(ValueError, match="zurich_00007.json: an ECP label file holds one object"):
        load_ecp(str(base / "day" / "labels" / "train"), str(base / "day" / "img" / "train"))
    (base / "day" / "labels" / "val").mkdir()
    with pytest.raises(FileNotFoundError, match="No ECP label file"):
        load_ecp(str(base / "day" / "labels" / "val"), str(base / "day" / "img" / "val"))


def _ecp_tagged(base, **options):
    """(person, ignore) indices into ECP_TAGGED of the zurich_00008 record loaded with `options`."""
    label_dir, image_dir = base / "day" / "labels" / "train", base / "day" / "img" / "train"
    record = load_ecp(str(label_dir), str(image_dir), **options)[3]
    index = {tuple(float(v) for v in (c["x0"], c["y0"], c["x1"], c["y1"])): i for i, c in enumerate(ECP_TAGGED)}
    people = [index[tuple(a["bbox"])] for a in record["annotations"]]
    return people, [index[tuple(float(v) for v in box)] for box in record["ignore_regions"]]


def test_ecp_tags_depictions_occlusion_truncation_height(tmp_path):
    base = write_ecp(tmp_path / "ECP")
    # "all" (20 px, 80 %): depictions, occluded>80, sitting-lying, behind-glass and the 15 px box are ignored.
    assert _ecp_tagged(base) == ([3, 6, 8], [0, 1, 2, 4, 5, 7])
    # "reasonable" (40 px, 40 %): also truncated>40 and the 25 px box.
    assert _ecp_tagged(base, **ECP_SETTINGS["reasonable"]) == ([6], [0, 1, 2, 3, 4, 5, 7, 8])
    assert _ecp_tagged(base, depictions="background") == ([3, 6, 8], [2, 4, 5, 7])
    assert _ecp_tagged(base, depictions="as_labelled") == ([0, 3, 6, 8], [1, 2, 4, 5, 7])
    assert _ecp_tagged(base, min_height=0, max_occlusion=101, depictions="as_labelled") == ([0, 2, 3, 6, 7, 8], [1, 4, 5])
    with pytest.raises(ValueError, match="depictions must be one of"):
        _ecp_tagged(base, depictions="person")


@pytest.fixture
def registered_mot(tmp_path):
    """A registered 2-frame MOT set `pretrain_test_mot`: tracks 5, 9 in frame 1, track 5 in frame 2."""
    rows = [(1, 5, 10, 5, 20, 30, 1), (1, 9, 40, 0, 10, 10, 1), (2, 5, 12, 6, 20, 30, 1)]
    write_sequence(tmp_path / "seq", rows, n_frames=2)
    register_mot_sequences("pretrain_test_mot", [str(tmp_path / "seq")])
    yield "pretrain_test_mot"
    DatasetCatalog.remove("pretrain_test_mot")
    MetadataCatalog.remove("pretrain_test_mot")


def test_crops_of_a_registered_mot_set_point_at_the_scene(tmp_path, registered_mot):
    crops = load_scene_crops("pretrain_test_mot")
    assert [r["image_id"] for r in crops] == ["seq/000001.jpg#0", "seq/000001.jpg#1", "seq/000002.jpg#0"]
    assert [r["file_name"] for r in crops] == [str(tmp_path / "seq" / "img1" / f"00000{i}.jpg") for i in (1, 1, 2)]
    assert [r[CROP_BOX] for r in crops] == [[10, 5, 30, 35], [40, 0, 50, 10], [12, 6, 32, 36]]
    assert _pids(crops) == [0, 1, 0]
    assert _pids(load_scene_crops("pretrain_test_mot", identities="each")) == [0, 1, 2]
    assert _pids(load_scene_crops("pretrain_test_mot", min_height=20)) == [0, 0]
    with pytest.raises(ValueError, match="no person box at least 100"):
        load_scene_crops("pretrain_test_mot", min_height=100)


REGISTRATIONS = {
    register_market1501: ["market1501_train"],
    register_cuhk03_np: ["cuhk03_np_labeled_train", "cuhk03_np_detected_train"],
    register_cuhk03_mat: [f"cuhk03_mat_{b}_{s}" for b in ("labeled", "detected") for s in ("train", "all")],
    register_msmt17: ["msmt17_train"],
    register_luperson: ["luperson_crops"],
    register_all_crowdhuman: list(CROWDHUMAN_SPLITS),
    register_all_ecp: list(ECP_SPLITS),
}


def _reregister():
    for register, names in REGISTRATIONS.items():
        for name in names:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register()


@pytest.fixture
def fresh_registrations():
    _reregister()
    yield
    _reregister()


def test_builtin_names_read_their_folders_under_the_datasets_root(tmp_path, monkeypatch, fresh_registrations):
    write_market(tmp_path / "market1501" / "bounding_box_train")
    write_jpg(str(tmp_path / "cuhk03_np" / "labeled" / "bounding_box_train" / "0001_c1_1.png"), 30, 70)
    write_cuhk03_mat(str(tmp_path / "cuhk03_release" / "cuhk-03.mat"), {"labeled": LABELED, "detected": DETECTED}, TESTSETS)
    write_jpg(str(tmp_path / "luperson" / "x.jpg"), 30, 70)
    write_crowdhuman(tmp_path / "crowdhuman")
    write_ecp(tmp_path / "ECP", time="night", split="val")
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    assert len(DatasetCatalog.get("market1501_train")) == 3
    assert MetadataCatalog.get("market1501_train").num_pids == 2
    assert _pids(DatasetCatalog.get("cuhk03_np_labeled_train")) == [0]
    assert len(DatasetCatalog.get("cuhk03_mat_labeled_train")) == 6 and MetadataCatalog.get("cuhk03_mat_labeled_train").num_pids == 3
    assert len(DatasetCatalog.get("luperson_crops")) == 1
    assert len(DatasetCatalog.get("crowdhuman_train")) == 3
    assert MetadataCatalog.get("crowdhuman_train").num_pids == 3
    assert len(DatasetCatalog.get("ecp_night_val")) == 4 and MetadataCatalog.get("ecp_night_val").num_pids == 6
    assert len(DatasetCatalog.get("ecp_night_val_reasonable")) == 4
    assert MetadataCatalog.get("ecp_night_val_reasonable").num_pids == 3
    with pytest.raises(FileNotFoundError, match="ECP/day/labels/train"):
        DatasetCatalog.get("ecp_day_train")
    with pytest.raises(FileNotFoundError, match="cuhk03_np/detected/bounding_box_train"):
        DatasetCatalog.get("cuhk03_np_detected_train")
    with pytest.raises(FileNotFoundError, match="list_train.txt"):
        DatasetCatalog.get("msmt17_train")


def test_detection_only_view_of_a_registered_set_gives_each_box_its_identity(registered_mot):
    from ps_plugin.data.datasets.detection_only import load_detection_only

    records = load_detection_only(registered_mot)
    assert _pids(records) == [0, 1, 2]
    assert all(r[INSTANCE_IDS] and "dataset_name" not in r for r in records)
    assert _pids(DatasetCatalog.get(registered_mot)) == [0, 1, 0]  # the source is untouched
