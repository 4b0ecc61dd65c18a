"""Failure behaviour (docs/FAILURE_BEHAVIOUR.md): nothing indexed or drawn is lost, and no bad input
gives a wrong answer silently. Search runs use test_search.py's ColourBoxSearchModel (exact, weightless);
the identity-table runs train the tiny SynthPS model of train_fixtures.py for two iterations."""
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog

from common import QUICK_SCHEDULES, REPO_ROOT
from ps_plugin.data.datasets.common import register_person_search
from ps_plugin.data.identities import IdentityMap
from ps_plugin.engine import PersonSearchCheckpointer
from ps_plugin.evaluation.gallery_results import GalleryResults
from ps_plugin.modeling.common import ReIDEmbeddingHead
from ps_plugin.search import GalleryIndex, crop_box
from ps_plugin.utils import files
from test_search import QUICK_OPTS, colour_searcher, demo, paint, search
from train_fixtures import build_trainer, register_tiny, tiny_synthps, tiny_train_cfg, unwrap

TESTS = Path(__file__).resolve().parent


def colour_gallery(folder, count):
    """`count` scenes, each one person of its own colour at its own place; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        paint(folder / f"scene{i}.png", [((255 - 30 * i, 30 * i, 0), (5 + 10 * i, 10, 40 + 10 * i, 100))])
    return folder


def assert_complete(index, folder):
    """Every image of `folder` indexed exactly once, with rows matching the manifest."""
    keys = [e["key"] for e in index.entries]
    assert len(keys) == len(set(keys)) and sorted(keys) == sorted(str(p) for p in folder.glob("*.png"))
    boxes, scores, embeddings, entry_of_row = index.arrays()
    assert len(boxes) == len(scores) == len(embeddings) == sum(e["count"] for e in index.entries) == len(keys)
    assert (np.bincount(entry_of_row, minlength=len(keys)) == 1).all()


# ---- item 1: indexing keeps its progress --------------------------------------------------------

def test_corrupt_image_is_skipped_and_reported_and_the_rest_indexed(tmp_path):
    gallery = colour_gallery(tmp_path / "gallery", 3)
    (gallery / "broken.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    searcher = colour_searcher(str(tmp_path / "index"))
    assert searcher.index_images(gallery, progress=False) == 3
    assert [Path(s["source"]).name for s in searcher.skipped] == ["broken.jpg"]
    assert "Cannot read image" in searcher.skipped[0]["error"]
    assert len(GalleryIndex.load(str(tmp_path / "index"))) == 3  # saved without an explicit save()


def test_sigkilled_indexing_resumes_without_duplicate_or_missing_entries(tmp_path):
    gallery = colour_gallery(tmp_path / "gallery", 7)
    index_dir = tmp_path / "index"
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(TESTS)!r})
from test_search import colour_searcher
searcher = colour_searcher({str(index_dir)!r}, save_every=2)
detect, calls = searcher.predictor.detect, []
def detect_then_die(image):
    calls.append(image)
    if len(calls) == 6:
        os.kill(os.getpid(), signal.SIGKILL)
    return detect(image)
searcher.predictor.detect = detect_then_die
searcher.index_images({str(gallery)!r}, progress=False)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(TESTS)]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    assert len(GalleryIndex.load(str(index_dir))) == 4  # two saves of two images; the fifth was not saved yet
    searcher = colour_searcher(str(index_dir))
    assert searcher.index_images(gallery, progress=False) == 3
    assert_complete(GalleryIndex.load(str(index_dir)), gallery)


def test_ctrl_c_during_indexing_saves_what_was_indexed(tmp_path):
    gallery = colour_gallery(tmp_path / "gallery", 4)
    searcher = colour_searcher(str(tmp_path / "index"), save_every=100)
    detect = searcher.predictor.detect

    def interrupted_at_third(image):
        if len(searcher.index) == 2:
            raise KeyboardInterrupt
        return detect(image)

    searcher.predictor.detect = interrupted_at_third
    with pytest.raises(KeyboardInterrupt):
        searcher.index_images(gallery, progress=False)
    assert len(GalleryIndex.load(str(tmp_path / "index"))) == 2


# ---- item 2: saves are atomic ---------------------------------------------------------------------

def test_interrupted_save_leaves_the_previous_index_loadable(tmp_path, monkeypatch):
    gallery = colour_gallery(tmp_path / "gallery", 3)
    index_dir = tmp_path / "index"
    searcher = colour_searcher(str(index_dir), save_every=0)
    searcher.index_images([gallery / "scene0.png", gallery / "scene1.png"], progress=False)

    def killed_before_rename(source, destination):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", killed_before_rename)
    with pytest.raises(KeyboardInterrupt):
        searcher.index_images(gallery / "scene2.png", progress=False)
    monkeypatch.undo()
    (index_dir / ".shard-000001.0123.tmp.npz").write_bytes(b"half a shard")  # what a SIGKILL leaves
    assert [Path(e["source"]).name for e in GalleryIndex.load(str(index_dir)).entries] == ["scene0.png", "scene1.png"]
    resumed = colour_searcher(str(index_dir))
    assert resumed.index_images(gallery, progress=False) == 1
    assert_complete(GalleryIndex.load(str(index_dir)), gallery)
    (index_dir / "shard-000000.npz").write_bytes(b"damaged")
    with pytest.raises(ValueError, match="shard-000000.npz' is damaged"):
        GalleryIndex.load(str(index_dir))


# ---- item 3: the demo never overwrites ------------------------------------------------------------

def demo_args(inputs, output, *extra):
    argv = ["--config-file", str(QUICK_SCHEDULES / "quickstart.yaml"), "--input", *map(str, inputs),
            "--output", str(output), *extra, "MODEL.META_ARCHITECTURE", "ColourBoxSearchModel", *QUICK_OPTS]
    return demo.get_parser().parse_args(argv)


def test_demo_mirrors_paths_never_overwrites_inputs_and_resumes(tmp_path):
    for folder in ("a/x", "b/x"):
        colour_gallery(tmp_path / "in" / folder, 1)
    inputs = [tmp_path / "in" / "a", tmp_path / "in" / "b"]
    out = tmp_path / "in" / "out"  # inside the input tree
    written = demo.main(demo_args(inputs, out, "--allow-untrained"))
    assert sorted(os.path.relpath(p, out) for p in written) == ["a/x/scene0.png", "b/x/scene0.png"]
    before = {p: Path(p).read_bytes() for p in map(str, (tmp_path / "in").rglob("*.png"))}
    assert demo.main(demo_args([tmp_path / "in"], out, "--allow-untrained")) == []  # outputs are no inputs; kept
    redrawn = demo.main(demo_args(inputs, out, "--allow-untrained", "--confidence-threshold", "0.95"))
    assert len(redrawn) == 2  # another threshold draws again
    with pytest.raises(ValueError, match="would overwrite input"):
        demo.main(demo_args([tmp_path / "in" / "a" / "x"], tmp_path / "in" / "a" / "x", "--allow-untrained"))
    assert all(Path(p).read_bytes() == data for p, data in before.items() if "/out/" not in p)


def test_demo_skips_unreadable_images_unless_strict_and_refuses_untrained(tmp_path):
    gallery = colour_gallery(tmp_path / "gallery", 2)
    (gallery / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="MODEL.WEIGHTS is empty"):
        demo.main(demo_args([gallery], tmp_path / "out"))
    assert len(demo.main(demo_args([gallery], tmp_path / "out", "--allow-untrained"))) == 2
    with pytest.raises(OSError, match="broken.png"):
        demo.main(demo_args([gallery], tmp_path / "strict", "--allow-untrained", "--strict"))


# ---- item 4: identities become contiguous table rows per training set -----------------------------

def test_identity_map_rows_hand_worked():
    identities = IdentityMap({"one_based": [1, 2, 3, 2], "sparse": [7, 0, 100], "zero_based": [0, 1]})
    assert identities.num_rows == 8
    assert [identities.row("one_based", p) for p in (1, 2, 3)] == [0, 1, 2]
    assert [identities.row("sparse", p) for p in (0, 7, 100)] == [3, 4, 5]
    assert [identities.row("zero_based", p) for p in (0, 1)] == [6, 7]  # id 0 of two sets: rows 3 and 6
    assert identities.row("sparse", -1) == -1
    record = {"file_name": "f", "annotations": [{"person_id": 100}, {"person_id": -1}]}
    relabelled = identities.relabel("sparse", [record])[0]
    assert [a["person_id"] for a in relabelled["annotations"]] == [5, -1]
    assert relabelled["annotations"][0]["source_person_id"] == 100 and record["annotations"][0]["person_id"] == 100
    with pytest.raises(ValueError, match="differs from DATASETS.TRAIN"):
        identities.load_state_dict(IdentityMap({"one_based": [1, 2, 3]}).state_dict())


def register_relabelled(root, name, relabel):
    """`name`: the tiny SynthPS training set with each labeled id p replaced by relabel(p)."""
    def load():
        records = [{k: v for k, v in r.items() if k != "dataset_name"} for r in DatasetCatalog.get("ids_train")]
        for record in records:
            record["annotations"] = [{**a, "person_id": relabel(a["person_id"]) if a["person_id"] >= 0 else -1}
                                     for a in record["annotations"]]
        return records

    register_tiny(root, "ids")
    if name not in DatasetCatalog.list():
        register_person_search(name, load)


def test_one_based_sparse_and_two_sets_train_with_distinct_rows(tmp_path_factory, tmp_path):
    root = tiny_synthps(tmp_path_factory.mktemp("synthps"))
    register_relabelled(root, "ids_one_based_train", lambda p: p + 1)
    register_relabelled(root, "ids_sparse_train", lambda p: 10 * p + 7)
    cfg = tiny_train_cfg(root, "ids", tmp_path, MAX_ITER=2)
    cfg.DATASETS.TRAIN = ("ids_one_based_train", "ids_sparse_train")
    num_ids = len({a["person_id"] for r in DatasetCatalog.get("ids_train") for a in r["annotations"]} - {-1})
    trainer = build_trainer(cfg)
    trainer.train()
    lut = unwrap(trainer.model).roi_heads.reid_branch.oim.lut.features
    assert trainer.identities.num_rows == 2 * num_ids and lut.shape[0] == 2 * num_ids
    rows = {name: {a["person_id"] for r in trainer.train_records if r["dataset_name"] == name
                   for a in r["annotations"] if a["person_id"] >= 0} for name in cfg.DATASETS.TRAIN}
    assert rows["ids_one_based_train"] == set(range(num_ids))
    assert rows["ids_sparse_train"] == set(range(num_ids, 2 * num_ids))
    touched = set(torch.nonzero(lut.abs().sum(dim=1)).flatten().tolist())
    assert touched and touched <= set(range(2 * num_ids))
    saved = torch.load(Path(tmp_path) / "model_final.pth", weights_only=True)
    assert saved["identities"] == trainer.identities.state_dict()


def test_too_small_num_pids_names_the_number_of_identities(tmp_path_factory, tmp_path):
    root = tiny_synthps(tmp_path_factory.mktemp("synthps"))
    cfg = tiny_train_cfg(root, "small", tmp_path)
    cfg.PS.REID.NUM_PIDS = 1
    with pytest.raises(ValueError, match=r"PS.REID.NUM_PIDS=1 is smaller than the \d+ labeled identities"):
        build_trainer(cfg)


# ---- item 5: untrained or different models --------------------------------------------------------

def test_index_of_another_model_is_refused_naming_both(tmp_path):
    gallery = colour_gallery(tmp_path / "gallery", 2)
    weights = []
    for name in ("model_a.pth", "model_b.pth"):
        torch.save({"model": {}, "__author__": name}, tmp_path / name)
        weights.append(str(tmp_path / name))
    with pytest.raises(ValueError, match="MODEL.WEIGHTS is empty"):
        colour_searcher(allow_untrained=False)
    searcher = colour_searcher(str(tmp_path / "index"), allow_untrained=False, weights=weights[0])
    searcher.index_images(gallery, progress=False)
    assert len(colour_searcher(str(tmp_path / "index"), weights=weights[0]).index) == 2  # same model: reused
    with pytest.raises(ValueError, match="model_a.pth.*model_b.pth"):
        colour_searcher(str(tmp_path / "index"), weights=weights[1])
    with pytest.raises(ValueError, match="config keys that differ: INPUT.MIN_SIZE_TEST"):
        colour_searcher(str(tmp_path / "index"), weights=weights[0], opts=["INPUT.MIN_SIZE_TEST", 80])


# ---- item 6: input validation ---------------------------------------------------------------------

def test_query_and_top_k_validation(tmp_path):
    gallery = colour_gallery(tmp_path / "gallery", 2)
    searcher = colour_searcher()
    searcher.index_images(gallery, progress=False)
    for top_k in (0, -1):
        with pytest.raises(ValueError, match="at least one hit"):
            searcher.search(gallery / "scene0.png", (5, 10, 40, 100), top_k=top_k)
    with pytest.raises(ValueError, match="at least 1x1 pixel"):
        searcher.search(gallery / "scene0.png", (5, 10, 5.5, 100))
    with pytest.raises(SystemExit):
        search.get_parser().parse_args(["--config-file", "c.yaml", "--query", "q.png", "--output", "o", "--top-k", "0"])


def test_box_arrays_must_be_n_by_4_naming_the_image():
    detections = {"scores": np.ones(3), "embeddings": np.ones((3, 2))}
    with pytest.raises(ValueError, match=r"image 'img7'.*\[4, 3\].*transposed"):
        GalleryResults.from_dict({"img7": {**detections, "boxes": np.ones((4, 3))}})
    with pytest.raises(ValueError, match=r"image 'img8' has boxes of shape \[3, 5\]"):
        GalleryResults.from_dict({"img8": {**detections, "boxes": np.ones((3, 5))}})


def test_embed_dim_zero_is_named():
    with pytest.raises(ValueError, match="PS.REID.EMBED_DIM"):
        ReIDEmbeddingHead(in_channels=8, embed_dim=0)


def test_truncated_checkpoint_is_named_and_code_in_it_never_runs(tmp_path, caplog):
    model = torch.nn.Linear(2, 2)
    good = tmp_path / "model.pth"
    torch.save({"model": model.state_dict()}, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated.pth"):
        PersonSearchCheckpointer(model).load(str(truncated))
    marker = tmp_path / "marker"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model": model.state_dict(), "extra": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="evil.pth"):
        PersonSearchCheckpointer(model).load(str(tmp_path / "evil.pth"))
    assert not marker.exists()
    with open(tmp_path / "zoo.pkl", "wb") as f:  # Detectron2's model-zoo format
        pickle.dump({"model": {k: v.numpy() for k, v in model.state_dict().items()}, "__author__": "test"}, f)
    logger = logging.getLogger("ps_plugin.engine.checkpointer")
    logger.addHandler(caplog.handler)  # ps_plugin's logger may not propagate (Detectron2's setup_logger)
    try:
        PersonSearchCheckpointer(model).load(str(tmp_path / "zoo.pkl"))
    finally:
        logger.removeHandler(caplog.handler)
    assert "zoo.pkl' is a pickle" in caplog.text and "runs any code" in caplog.text


# ---- item 8: the montage shows enlarged crops -----------------------------------------------------

def test_crop_box_widens_to_whole_pixels_and_keeps_one_pixel():
    image = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    assert crop_box(image, (1.5, 2.2, 4.1, 5.0)).shape == (3, 4, 3)  # x 1..5, y 2..5
    np.testing.assert_array_equal(crop_box(image, (1.5, 2.2, 4.1, 5.0)), image[2:5, 1:5])
    assert crop_box(image, (11.9, 9.5, 11.9, 9.5)).shape == (1, 1, 3)
    assert crop_box(image, (-3, -3, 40, 40)).shape == image.shape


def test_search_cli_lists_skipped_images_and_draws_crops_above_frames(tmp_path):
    gallery = colour_gallery(tmp_path / "gallery", 3)
    (gallery / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "search"
    argv = ["--config-file", str(QUICK_SCHEDULES / "quickstart.yaml"), "--query", str(gallery / "scene1.png"),
            "--box", "15", "10", "50", "100", "--gallery", str(gallery), "--output", str(out), "--top-k", "2",
            "--allow-untrained", "MODEL.META_ARCHITECTURE", "ColourBoxSearchModel", *QUICK_OPTS]
    hits = search.main(search.get_parser().parse_args(argv))
    assert Path(hits[0].image).name == "scene1.png" and hits[0].similarity == pytest.approx(1.0, abs=1e-3)
    report = json.loads((out / "search_hits.json").read_text())
    assert [Path(s["source"]).name for s in report["skipped"]] == ["broken.png"]
    import cv2
    montage = cv2.imread(str(out / "search_montage.png"))
    assert montage.shape[:2] == (600, 720)  # two rows (crops, frames) of 3 panels: 2 x 3 in by 3 x 2.4 in at 100 dpi
