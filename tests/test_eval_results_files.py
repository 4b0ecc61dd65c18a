"""The results file (.npz by default, pickles only on request), the cached CUHK-SYSU protocol parse,
and the numpy-only import of the evaluation code (issue 18 item 2, issue 19 item 9)."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from common import REPO_ROOT
from format_fixtures import write_cuhk_sysu, write_cuhk_sysu_protocol
from ps_plugin.data.datasets import cuhk_sysu_protocol
from ps_plugin.data.datasets.cuhk_sysu import load_cuhk_sysu_protocol
from ps_plugin.data.datasets.cuhk_sysu_protocol import cuhk_sysu_search_records, read_cuhk_sysu_protocol
from ps_plugin.evaluation import GalleryResults, evaluate_search, load_results, queries_for_protocol, save_results
from ps_plugin.evaluation.simulate import ResultSimulator, simulate_results

BOX = [100.0, 100.0, 150.0, 250.0]


def gallery():
    return {
        "a.jpg": {"boxes": [BOX, [0, 0, 10, 20]], "scores": [0.9, 0.3], "embeddings": [[3.0, 4.0], [0.0, 2.0]]},
        "b.jpg": {"boxes": np.zeros((0, 4)), "scores": [], "embeddings": np.zeros((0, 2))},
    }


def queries(image="q.jpg"):
    return [{"image": image, "box": BOX, "embedding": np.array([1.0, 0.0])}]


class WritesMarker:
    """Unpickling this calls open(marker, "w"): a harmless stand-in for any code a pickle can run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_npz_round_trip_keeps_values_and_query_sets(tmp_path):
    path = tmp_path / "results.npz"
    save_results(path, gallery(), queries(), {"set_a": queries("r.jpg")})
    loaded, saved = load_results(path)
    assert loaded.image_ids == ["a.jpg", "b.jpg"] and loaded.counts.tolist() == [2, 0]
    np.testing.assert_array_equal(loaded.boxes, [BOX, [0, 0, 10, 20]])
    np.testing.assert_allclose(loaded.embeddings, [[0.6, 0.8], [0.0, 1.0]])  # L2-normalised on load
    assert loaded.scores.tolist() == pytest.approx([0.9, 0.3])
    assert saved[0]["image"] == "q.jpg" and saved[0]["box"].tolist() == BOX
    assert load_results(path, "set_a")[1][0]["image"] == "r.jpg"
    with pytest.raises(KeyError, match=r"no query set 'set_b'; the file holds \['set_a'\]"):
        load_results(path, "set_b")


def test_npz_with_transposed_boxes_is_refused(tmp_path):
    path = tmp_path / "results.npz"
    save_results(path, gallery(), queries())
    with np.load(path) as content:
        arrays = dict(content)
    arrays["gallery/boxes"] = arrays["gallery/boxes"].T  # [4, N] instead of [N, 4]
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"results.npz: boxes \[4, 2\].*N = 2 detections.*\[N, 4\]"):
        load_results(path)


def test_pickle_is_refused_without_the_flag_and_would_run_code(tmp_path):
    """The marker shows what loading the pickle does; without allow_pickle it is never created."""
    marker, path = tmp_path / "marker", tmp_path / "results.pkl"
    path.write_bytes(pickle.dumps({"gallery": WritesMarker(marker), "queries": []}))
    with pytest.raises(ValueError, match=r"results.pkl: not an .npz results file.*--allow-pickle"):
        load_results(path)
    assert not marker.exists()
    with pytest.warns(UserWarning, match="runs any code it holds"):
        load_results(path, allow_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize("content", [b"", b"not a pickle at all", pickle.dumps({"gallery": {}})[:-3]])
def test_unreadable_pickle_is_named(tmp_path, content):
    path = tmp_path / "results.pkl"
    path.write_bytes(content)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"results.pkl: not a readable results pickle"):
        load_results(path, allow_pickle=True)


def test_trusted_pickle_gives_the_metrics_of_its_npz(tmp_path):
    records = [{"image_id": "q.jpg", "annotations": [{"bbox": BOX, "person_id": 1}],
                "gallery": {"image_ids": ["a.jpg", "b.jpg"], "boxes": np.array([BOX, [np.nan] * 4])}}]
    path = tmp_path / "results.pkl"
    path.write_bytes(pickle.dumps({"gallery": gallery(), "queries": queries()}))
    with pytest.warns(UserWarning):
        pickled = evaluate_search(*_gallery_and_queries(path, records, allow_pickle=True)).summary()
    save_results(tmp_path / "results.npz", gallery(), queries())
    assert evaluate_search(*_gallery_and_queries(tmp_path / "results.npz", records)).summary() == pickled
    assert pickled["mAP"] == 1.0


def _gallery_and_queries(path, records, allow_pickle=False):
    results, saved = load_results(path, allow_pickle=allow_pickle)
    return results, queries_for_protocol(saved, records)


def test_protocol_cache_is_used_and_follows_the_source(tmp_path, monkeypatch):
    """First read parses and writes the cache; a fresh process (the in-memory cache cleared) reads
    it without parsing; a rewritten .mat (new content) is parsed again."""
    mat = os.path.join(write_cuhk_sysu(str(tmp_path)), "annotation", "test", "train_test", "TestG50.mat")
    monkeypatch.setenv("PS_PLUGIN_CACHE", str(tmp_path / "cache"))
    parsed = read_cuhk_sysu_protocol(mat)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    monkeypatch.setattr(cuhk_sysu_protocol, "_parse_protocol_mat", lambda path: pytest.fail("parsed again"))
    cached = cuhk_sysu_protocol.read_cuhk_sysu_protocol.__wrapped__(mat)
    for a, b in zip(parsed, cached, strict=True):
        assert (a["imname"], a["person_id"], a["gallery_imnames"]) == (b["imname"], b["person_id"], b["gallery_imnames"])
        np.testing.assert_array_equal(a["box_xywh"], b["box_xywh"])
        np.testing.assert_array_equal(a["gallery_xywh"], b["gallery_xywh"])
    monkeypatch.undo()
    monkeypatch.setenv("PS_PLUGIN_CACHE", str(tmp_path / "cache"))
    write_cuhk_sysu_protocol(mat, 50, [("s4.jpg", [20, 30, 40, 90], "p77", [("s5.jpg", None)])])
    rewritten = cuhk_sysu_protocol.read_cuhk_sysu_protocol.__wrapped__(mat)
    assert [(q["person_id"], q["gallery_imnames"]) for q in rewritten] == [(77, ["s5.jpg"])]
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_search_records_match_the_dataset_records(tmp_path):
    """What tools/evaluate_results.py evaluates (no Detectron2) equals the registered query sets'
    records on the fixture's two protocols (TestG100 lists one image twice)."""
    root = write_cuhk_sysu(str(tmp_path))
    embedding = {"embedding": np.ones(2)}
    for name in ("TestG50.mat", "TestG100.mat"):
        mat = os.path.join(root, "annotation", "test", "train_test", name)
        full = load_cuhk_sysu_protocol(mat)
        saved = [{"image": r["image_id"], **embedding} for r in full]
        light = queries_for_protocol(saved, cuhk_sysu_search_records(mat))
        for a, b in zip(queries_for_protocol(saved, full), light, strict=True):
            assert (a.image_id, a.person_id, a.gallery_image_ids) == (b.image_id, b.person_id, b.gallery_image_ids)
            np.testing.assert_array_equal(a.box, b.box)
            np.testing.assert_array_equal(a.gallery_boxes, b.gallery_boxes)


def test_simulated_results_evaluate_alike_from_dict_and_npz(tmp_path):
    """save_results / load_results change no number: the same metrics as the in-memory dict."""
    root = write_cuhk_sysu(str(tmp_path))
    records = cuhk_sysu_search_records(os.path.join(root, "annotation", "test", "train_test", "TestG100.mat"))
    content = simulate_results(ResultSimulator(dim=8, noise=2.0, false_positives=3, seed=4), records)
    save_results(tmp_path / "r.npz", content["gallery"], content["queries"])
    from_file = evaluate_search(*_gallery_and_queries(tmp_path / "r.npz", records), cbgm=True)
    in_memory = evaluate_search(GalleryResults.from_dict(content["gallery"]), queries_for_protocol(content["queries"], records), cbgm=True)
    assert from_file.summary() == in_memory.summary()


def test_evaluation_imports_without_torch_and_ps_plugin_still_registers():
    light = (
        "import sys\n"
        "import ps_plugin.evaluation.protocols, ps_plugin.evaluation.results_io\n"
        "import ps_plugin.data.datasets.cuhk_sysu_protocol\n"
        "from ps_plugin.evaluation import evaluate_search, load_results\n"
        "print(sorted(m for m in ('torch', 'detectron2', 'scipy.optimize', 'scipy.io') if m in sys.modules))\n"
    )
    env = {**os.environ, "PS_PLUGIN_SKIP_REGISTRATION": "1", "PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run([sys.executable, "-c", light], env=env, capture_output=True, text=True, cwd=REPO_ROOT)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"

    import ps_plugin  # noqa: F401  (in this process: registered as always)
    from detectron2.data import DatasetCatalog
    from detectron2.modeling import META_ARCH_REGISTRY

    assert "cuhk_sysu_query_G100" in DatasetCatalog.list() and "PersonSearchRCNN" in META_ARCH_REGISTRY
    assert ps_plugin.setup_cfg.__module__ == "ps_plugin.config.setup_cfg"
