"""SynthPS: determinism, on-disk format, registered loaders, boxes, identities and the protocol."""
import hashlib
import json
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ps_plugin.data.datasets.synthps import register_all_synthps
from ps_plugin.data.synthps import SIZES, SynthPSSize, generate_synthps, render_preview
from ps_plugin.data.synthps.appearance import sample_appearance
from ps_plugin.data.synthps.config import resolve_size
from ps_plugin.data.synthps.person import render_person, sample_pose

TINY = SynthPSSize(
    num_train_images=10,
    num_gallery_images=10,
    gallery_size=6,
    num_cameras=2,
    image_sizes=((320, 240),),
    person_height=(40, 200),
    occluder_probability=1.0,
)
SEED = 7


def _file_hashes(root):
    hashes = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                hashes[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return hashes


def _read(root, name):
    with open(os.path.join(root, name), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def synthps(tmp_path_factory):
    """(root, summary) of a tiny SynthPS generated once for the module."""
    root = str(tmp_path_factory.mktemp("d2") / "synthps")
    return root, generate_synthps(root, seed=SEED, size=TINY, workers=1)


@pytest.fixture(scope="module")
def loaded(synthps):
    """Records of the tiny set through freshly registered loaders: (train, gallery, query, names)."""
    root, _ = synthps
    register_all_synthps(root=root, prefix="synthps_tiny")
    names = ("synthps_tiny_train", "synthps_tiny_gallery", "synthps_tiny_query")
    yield tuple(DatasetCatalog.get(n) for n in names) + (names,)
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_same_seed_same_bytes_other_seed_differs(synthps, tmp_path):
    root, _ = synthps
    again = generate_synthps(str(tmp_path / "again"), seed=SEED, size=TINY, workers=2)
    other = generate_synthps(str(tmp_path / "other"), seed=SEED + 1, size=TINY, workers=1)
    reference = _file_hashes(root)
    assert len(reference) == TINY.num_train_images + TINY.num_gallery_images + 4
    assert _file_hashes(again["output_dir"]) == reference
    other_hashes = _file_hashes(other["output_dir"])
    assert other_hashes.keys() == reference.keys()
    assert sum(other_hashes[k] != reference[k] for k in reference) >= len(reference) - 1


def test_summary_counts_are_those_of_the_written_files(synthps):
    """Every count in the summary, recounted from the json files (generation time is not tested)."""
    root, summary = synthps
    train, gallery, query, identities = (_read(root, f"{n}.json") for n in ("train", "gallery", "query", "identities"))
    persons = train["annotations"] + gallery["annotations"]
    heights = [a["bbox"][3] for a in persons]
    assert summary["train_images"] == len(train["images"]) == TINY.num_train_images
    assert summary["gallery_images"] == len(gallery["images"]) == TINY.num_gallery_images
    assert summary["queries"] == len(query["protocol"]) >= 3
    assert summary["train_identities"] == len(identities["train"])
    assert summary["test_identities"] == len(identities["test"])
    assert summary["persons"] == len(persons)
    assert summary["unlabeled_persons"] == sum(a["person_id"] == -1 for a in persons) > 0
    assert summary["occluded_persons"] == sum(a["visibility"] < 0.9 for a in persons) > 0
    assert summary["person_height_range"] == (min(heights), max(heights))
    assert summary["mean_gallery_size"] == pytest.approx(np.mean([len(q["gallery"]) for q in query["protocol"]]))


def test_coco_json_schema(synthps):
    root, _ = synthps
    for split in ("train", "gallery", "query"):
        data = _read(root, f"{split}.json")
        assert data["categories"] == [{"id": 1, "name": "person"}]
        image_ids = set()
        for image in data["images"]:
            assert set(image) >= {"id", "file_name", "height", "width", "cam_id"}
            assert (image["width"], image["height"]) == (320, 240)
            assert 1 <= image["cam_id"] <= TINY.num_cameras
            assert os.path.isfile(os.path.join(root, "images", image["file_name"]))
            image_ids.add(image["id"])
        for ann in data["annotations"]:
            assert ann["image_id"] in image_ids
            assert ann["category_id"] == 1 and ann["iscrowd"] == 0
            x, y, w, h = ann["bbox"]
            assert ann["area"] == w * h
            assert ann["person_id"] >= -1
    query = _read(root, "query.json")
    assert len(query["images"]) == len(query["annotations"]) == len(query["protocol"])


def test_registered_loaders(loaded):
    train, gallery, queries, (train_name, gallery_name, query_name) = loaded
    assert len(train) == 10 and len(gallery) == 10
    for record in train + gallery:
        assert os.path.isfile(record["file_name"])
        assert record["image_id"] == os.path.basename(record["file_name"])
        assert 1 <= record["camera_id"] <= TINY.num_cameras
        assert record["dataset_name"] in (train_name, gallery_name)
        for ann in record["annotations"]:
            assert ann["bbox_mode"] == BoxMode.XYXY_ABS and ann["category_id"] == 0
    assert [q["query_index"] for q in queries] == list(range(len(queries)))
    for query in queries:
        assert len(query["annotations"]) == 1
        boxes = query["gallery"]["boxes"]
        assert boxes.dtype == np.float32 and boxes.shape == (len(query["gallery"]["image_ids"]), 4)
    query_meta = MetadataCatalog.get(query_name)
    assert query_meta.gallery_dataset == gallery_name and query_meta.protocol == "generic"
    assert MetadataCatalog.get(gallery_name).query_datasets == [query_name]
    train_pids = {a["person_id"] for r in train for a in r["annotations"]} - {-1}
    assert MetadataCatalog.get(train_name).num_pids == len(train_pids)


def test_builtin_names_resolve_root_at_load_time(synthps, monkeypatch, tmp_path):
    root, _ = synthps
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="generate_synthps.py"):
        DatasetCatalog.get("synthps_gallery")
    monkeypatch.setenv("DETECTRON2_DATASETS", os.path.dirname(root))
    assert len(DatasetCatalog.get("synthps_gallery")) == TINY.num_gallery_images


def test_boxes_inside_images_and_heights_in_range(loaded):
    train, gallery, _, _ = loaded
    low, high = TINY.person_height
    for record in train + gallery:
        boxes = np.array([a["bbox"] for a in record["annotations"]]).reshape(-1, 4)
        assert len(boxes) >= 1
        assert (boxes[:, :2] >= 0).all()
        assert (boxes[:, 2] <= record["width"]).all() and (boxes[:, 3] <= record["height"]).all()
        heights = boxes[:, 3] - boxes[:, 1]
        assert ((heights >= low - 1) & (heights <= high)).all(), (record["image_id"], heights)


def test_person_sprite_is_tight():
    rng = np.random.default_rng(0)
    for height in (40, 120, 300):
        sprite = render_person(sample_appearance(rng), sample_pose(rng), height)
        assert sprite.alpha.shape == sprite.rgb.shape[:2] and sprite.alpha.shape[0] == height
        assert sprite.alpha[0].max() > 0 and sprite.alpha[-1].max() > 0
        assert sprite.alpha[:, 0].max() > 0 and sprite.alpha[:, -1].max() > 0
        assert 0.2 < sprite.alpha.shape[1] / height < 0.75


def test_identities_disjoint_between_train_and_test(loaded, synthps):
    train, gallery, queries, _ = loaded
    train_ids = {a["person_id"] for r in train for a in r["annotations"]} - {-1}
    test_ids = {a["person_id"] for r in gallery for a in r["annotations"]} - {-1}
    assert train_ids and test_ids and not train_ids & test_ids
    assert {q["annotations"][0]["person_id"] for q in queries} <= test_ids


def test_query_galleries(loaded):
    _, gallery, queries, _ = loaded
    holders = {}
    for record in gallery:
        for ann in record["annotations"]:
            holders.setdefault(ann["person_id"], set()).add(record["image_id"])
    for query in queries:
        person_id = query["annotations"][0]["person_id"]
        image_ids = query["gallery"]["image_ids"]
        positives = ~np.isnan(query["gallery"]["boxes"][:, 0])
        assert query["image_id"] not in image_ids
        assert len(set(image_ids)) == len(image_ids) == min(TINY.gallery_size, len(gallery) - 1)
        assert positives.sum() >= 1
        assert {i for i, p in zip(image_ids, positives) if p} == holders[person_id] - {query["image_id"]}


def test_same_identity_same_attributes_everywhere(synthps):
    root, _ = synthps
    identities = _read(root, "identities.json")
    attributes = {i["person_id"]: i["appearance"] for i in identities["train"] + identities["test"]}
    seen = set()
    for split in ("train", "gallery", "query"):
        for ann in _read(root, f"{split}.json")["annotations"]:
            if ann["person_id"] >= 0:
                assert ann["appearance"] == attributes[ann["person_id"]]
                seen.add(ann["person_id"])
    assert len(seen) >= 10


def test_look_alikes_share_colours_but_differ_in_pattern_or_accessory(synthps):
    root, _ = synthps
    identities = _read(root, "identities.json")
    everyone = identities["train"] + identities["test"]
    by_id = {i["person_id"]: i["appearance"] for i in everyone}
    look_alikes = [i for i in everyone if i["look_alike_of"] >= 0]
    assert len(look_alikes) >= 2
    for identity in look_alikes:
        mine, theirs = identity["appearance"], by_id[identity["look_alike_of"]]
        for key in ("upper_colour", "lower_colour", "upper_pattern_colour", "lower_pattern_colour", "accessory_colour"):
            assert mine[key] == theirs[key]
        assert any(mine[k] != theirs[k] for k in ("upper_pattern", "lower_pattern", "accessory"))
    split_of = {i["person_id"]: s for s in ("train", "test") for i in identities[s]}
    assert all(split_of[i["person_id"]] == split_of[i["look_alike_of"]] for i in look_alikes)


def test_unlabeled_and_occluded_people_exist(loaded, synthps):
    root, _ = synthps
    train, gallery, _, _ = loaded
    for records in (train, gallery):
        assert any(a["person_id"] == -1 for r in records for a in r["annotations"])
    visibility = [a["visibility"] for a in _read(root, "gallery.json")["annotations"]]
    assert min(visibility) < 0.9 and all(0.0 <= v <= 1.0 for v in visibility)


def test_preview_png(synthps, tmp_path):
    from PIL import Image

    root, _ = synthps
    out = render_preview(root, str(tmp_path / "preview.png"), num_scenes=4, columns=2, tile_size=(160, 120))
    with Image.open(out) as image:
        assert image.size == (320, 240)
        assert np.asarray(image).std() > 10


def test_sizes():
    assert resolve_size("default") is SIZES["default"]
    large, default = SIZES["large"], SIZES["default"]
    assert large.num_train_images >= 3 * default.num_train_images
    assert 20 <= default.gallery_size <= 50
    with pytest.raises(ValueError, match="default"):
        resolve_size("huge")


@pytest.mark.slow
def test_default_size_counts(tmp_path):
    summary = generate_synthps(str(tmp_path / "synthps"), seed=0, size="default")
    assert (summary["train_images"], summary["gallery_images"]) == (300, 100)
    assert 60 <= summary["queries"] <= 100
    assert summary["mean_gallery_size"] == SIZES["default"].gallery_size
    assert summary["person_height_range"][0] >= 39 and summary["person_height_range"][1] <= 300
