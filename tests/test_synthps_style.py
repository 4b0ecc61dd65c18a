"""SynthPS style b, the domain-adaptation target: deterministic, measurably shifted, its own identities,
registered as synthps_b_* and resolved under <DETECTRON2_DATASETS>/synthps_b at load time."""
import json
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog
from PIL import Image

from ps_plugin.data.synthps import STYLES, SynthPSSize, generate_synthps
from ps_plugin.data.synthps.style import resolve_style

TINY = SynthPSSize(
    num_train_images=12,
    num_gallery_images=12,
    gallery_size=6,
    num_cameras=3,
    image_sizes=((320, 240),),
    person_height=(40, 200),
)
SEED = 5


@pytest.fixture(scope="module")
def styles(tmp_path_factory):
    """{style name: (root, summary)} of the tiny set in both styles, same seed."""
    base = tmp_path_factory.mktemp("d2")
    return {
        name: (str(base / STYLES[name].folder), generate_synthps(str(base / STYLES[name].folder), SEED, TINY, 1, name))
        for name in ("a", "b")
    }


def _json(root, name):
    with open(os.path.join(root, f"{name}.json"), encoding="utf-8") as f:
        return json.load(f)


def _pixels(root):
    """float64 [N, 3] of every pixel of every image under root/images."""
    folder = os.path.join(root, "images")
    return np.concatenate(
        [np.asarray(Image.open(os.path.join(folder, n)), dtype=np.float64).reshape(-1, 3) for n in os.listdir(folder)]
    )


def _heights(root):
    return np.array([a["bbox"][3] for split in ("train", "gallery") for a in _json(root, split)["annotations"]])


def test_style_b_is_deterministic_per_seed(styles, tmp_path):
    root, _ = styles["b"]
    again = generate_synthps(str(tmp_path / "again"), SEED, TINY, 2, "b")["output_dir"]
    other = generate_synthps(str(tmp_path / "other"), SEED + 1, TINY, 1, "b")["output_dir"]
    names = sorted(os.listdir(os.path.join(root, "images")))

    def image_bytes(folder, name):
        with open(os.path.join(folder, "images", name), "rb") as f:
            return f.read()

    assert all(image_bytes(root, n) == image_bytes(again, n) for n in names)
    assert _json(root, "train") == _json(again, "train") and _json(root, "query") == _json(again, "query")
    assert sum(image_bytes(root, n) != image_bytes(other, n) for n in names) == len(names)


def test_style_b_is_darker_bluer_with_smaller_people(styles):
    """The shift the LAID benchmark relies on, measured on the written files."""
    pixels_a, pixels_b = _pixels(styles["a"][0]), _pixels(styles["b"][0])
    assert pixels_b.mean() < 0.75 * pixels_a.mean()
    blue_red_a = pixels_a[:, 2].mean() / pixels_a[:, 0].mean()
    blue_red_b = pixels_b[:, 2].mean() / pixels_b[:, 0].mean()
    assert blue_red_b > 1.2 * blue_red_a
    heights_a, heights_b = _heights(styles["a"][0]), _heights(styles["b"][0])
    assert np.median(heights_b) < 0.85 * np.median(heights_a)
    assert heights_b.max() <= round(TINY.person_height[1] * STYLES["b"].person_scale)
    assert _json(styles["b"][0], "train")["info"]["style"] == "b"


def test_style_b_has_its_own_identities_numbered_from_zero(styles):
    """Other people (no appearance in common with style a); ids from 0, so OIM trains on style b alone."""

    def roster(root):
        identities = _json(root, "identities")
        return {
            split: {i["person_id"]: json.dumps(i["appearance"], sort_keys=True) for i in identities[split]}
            for split in ("train", "test")
        }

    roster_a, roster_b = roster(styles["a"][0]), roster(styles["b"][0])
    looks_a = set(roster_a["train"].values()) | set(roster_a["test"].values())
    assert not looks_a & (set(roster_b["train"].values()) | set(roster_b["test"].values()))
    assert sorted(roster_b["train"]) == list(range(len(roster_b["train"])))
    query_ids = {q["person_id"] for q in _json(styles["b"][0], "query")["protocol"]}
    assert query_ids and query_ids <= set(roster_b["test"])


def test_builtin_synthps_b_resolves_its_own_folder_at_load_time(styles, monkeypatch):
    root, summary = styles["b"]
    monkeypatch.setenv("DETECTRON2_DATASETS", os.path.dirname(root))
    queries = DatasetCatalog.get("synthps_b_query")
    assert len(queries) == summary["queries"]
    assert {q["image_id"] for q in queries} <= set(os.listdir(os.path.join(root, "images")))
    assert len(DatasetCatalog.get("synthps_b_gallery")) == TINY.num_gallery_images
    monkeypatch.setenv("DETECTRON2_DATASETS", os.path.join(root, "absent"))
    with pytest.raises(FileNotFoundError, match="--style b"):
        DatasetCatalog.get("synthps_b_train")


def test_unknown_style_names_the_choices():
    assert resolve_style("b") is STYLES["b"]
    with pytest.raises(ValueError, match=r"\['a', 'b'\]"):
        resolve_style("c")
