"""tools/evaluate_results.py end to end: a results file and the real protocol file formats
(format_fixtures.py) in, the printed table and the --output JSON out, against hand-worked metrics.
CUHK-SYSU runs without torch (well under a second a run); PRW loads its dataset through Detectron2."""
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

from common import REPO_ROOT
from format_fixtures import write_cuhk_sysu, write_prw
from ps_plugin.evaluation import save_results


def unit(*pairs, dim=6):
    """Unit vector in R^dim from (dimension, value) pairs."""
    vector = np.zeros(dim, dtype=np.float32)
    for index, value in pairs:
        vector[index] = value
    return vector


def detections(*rows):
    """{"boxes", "scores", "embeddings"} from (box x1y1x2y2, score, embedding) rows."""
    return {"boxes": np.array([r[0] for r in rows], float), "scores": np.array([r[1] for r in rows]),
            "embeddings": np.stack([r[2] for r in rows])}


def run_tool(results, *args, output, expect_success=True):
    completed = subprocess.run(
        [sys.executable, "tools/evaluate_results.py", str(results), *args, "--output", str(output)],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )
    if not expect_success:
        assert completed.returncode != 0
        return completed.stderr
    assert completed.returncode == 0, completed.stderr
    return completed.stdout, json.loads(output.read_text())


def test_cuhk_sysu_protocol_with_and_without_cbgm(tmp_path):
    """TestG50 of the fixture (boxes as x1y1x2y2):
        query 0: p10 in s4 [20, 30, 60, 120]; gallery s5 (p10 at [60, 40, 360, 290]), s6, s7.
        query 1: p11 in s6 [30, 20, 70, 120]; gallery s5 (p11 at [10, 10, 40, 70]), s4, s7.
    Results: s4 holds the query p10 (e0) and beside it B (e1). In s5, A1 on p10 looks little like
    the query (0.28) but B1 is B (12/13); s6 holds D (0.8 to query 0), s7 F (0).

    Plain: query 0 ranks D .8, B1 5/13, A1 .28: AP 1/3, rank 3. Query 1 (0.6 to its person, 0 to
    everything else): AP 1, rank 1. mAP 2/3, top-1 1/2, top-5 1.
    CBGM (k1 10, k2 3): query 0's context is (e0, e1) (its own detection overlaps the query box);
    in s5 the matching e0-A1, e1-B1 (1.20) beats e0-B1 (.385), so A1 := 12/13 > D: AP 1. Query 1's
    context is itself alone (D is its own box): its scores stay. mAP 1, top-1 1.
    """
    protocol = write_cuhk_sysu(tmp_path) + "/annotation/test/train_test/TestG50.mat"
    gallery = {
        "s4.jpg": detections(([20, 30, 60, 120], 0.95, unit((0, 1))), ([100, 20, 130, 90], 0.9, unit((1, 1)))),
        "s5.jpg": detections(([60, 40, 360, 290], 0.9, unit((0, 0.28), (3, 0.96))), ([10, 10, 40, 70], 0.9, unit((5, 1))),
                             ([200, 20, 240, 100], 0.9, unit((0, 5 / 13), (1, 12 / 13)))),
        "s6.jpg": detections(([30, 20, 70, 120], 0.9, unit((0, 0.8), (4, 0.6)))),
        "s7.jpg": detections(([50, 50, 80, 110], 0.9, unit((4, 1)))),
    }
    queries = [{"image": "s4.jpg", "box": [20, 30, 60, 120], "embedding": unit((0, 1))},
               {"image": "s6.jpg", "box": [30, 20, 70, 120], "embedding": unit((5, 0.6), (2, 0.8))}]
    results = tmp_path / "results.npz"
    save_results(results, gallery, queries)

    printed, metrics = run_tool(results, "--protocol", "cuhk_sysu", "--protocol-file", protocol, output=tmp_path / "plain.json")
    assert metrics == pytest.approx({"mAP": 2 / 3, "top1": 0.5, "top5": 1.0, "top10": 1.0})
    assert "results.npz: 2 queries, protocol cuhk_sysu" in printed
    assert "| mAP | 66.67% |" in printed and "| top1 | 50.00% |" in printed

    printed, metrics = run_tool(results, "--protocol", "cuhk_sysu", "--protocol-file", protocol, "--cbgm",
                                output=tmp_path / "cbgm.json")
    assert metrics == pytest.approx({"mAP": 1.0, "top1": 1.0, "top5": 1.0, "top10": 1.0})
    assert "| mAP | 100.00% |" in printed and "| top1 | 100.00% |" in printed


def test_pickle_only_with_allow_pickle_and_converted_to_npz(tmp_path):
    """The legacy pickle format: refused by default (it could run code); read with --allow-pickle,
    which warns, and written out as the .npz that then evaluates alike. TestG50: query 0 finds p10
    in s5 (AP 1, rank 1); query 1's p11 in s5 has no detection (AP 0): mAP 1/2, top-1 1/2."""
    protocol = write_cuhk_sysu(tmp_path) + "/annotation/test/train_test/TestG50.mat"
    nobody = {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "embeddings": np.zeros((0, 6))}
    gallery = {"s5.jpg": detections(([60, 40, 360, 290], 0.9, unit((0, 1)))), "s6.jpg": nobody, "s7.jpg": nobody,
               "s4.jpg": nobody}
    queries = [{"image": "s4.jpg", "box": [20, 30, 60, 120], "embedding": unit((0, 1))},
               {"image": "s6.jpg", "box": [30, 20, 70, 120], "embedding": unit((1, 1))}]
    legacy = tmp_path / "legacy.pkl"
    legacy.write_bytes(pickle.dumps({"gallery": gallery, "queries": queries}))
    args = ("--protocol", "cuhk_sysu", "--protocol-file", protocol)
    error = run_tool(legacy, *args, output=tmp_path / "m.json", expect_success=False)
    assert "legacy.pkl: not an .npz results file" in error and "--allow-pickle" in error
    converted = tmp_path / "converted.npz"
    _, from_pickle = run_tool(legacy, *args, "--allow-pickle", "--write-npz", str(converted), output=tmp_path / "p.json")
    _, from_npz = run_tool(converted, *args, output=tmp_path / "n.json")
    assert from_pickle == from_npz == pytest.approx({"mAP": 0.5, "top1": 0.5, "top5": 0.5, "top10": 0.5})


@pytest.mark.slow  # the PRW loaders import torch and Detectron2 (~5 s CPU)
def test_prw_protocol(tmp_path):
    """The PRW fixture's test frames (camera = digit after "c"):
        c3s2_000300: p5 [10, 10, 40, 70] (query 0), an unlabeled person; c4s1_000400: p5
        [80, 20, 110, 80], p9 [20, 20, 50, 80] (query 1); c1s3_000500: no one.
    Query 0 (e0) searches c4s1 and c1s3 (not its own frame): Y on p9 (0.8) outranks X on p5 (0.6),
    Z (0): AP 1/2, rank 2. Query 1: p9 is in no other frame: AP 0, no hit.
    mAP 1/4, top-1 0, top-5 1/2.
    """
    write_prw(tmp_path)
    gallery = {
        "c3s2_000300.jpg": detections(([10, 10, 40, 70], 0.9, unit((0, 1))), ([60, 10, 90, 70], 0.9, unit((4, 1)))),
        "c4s1_000400.jpg": detections(([80, 20, 110, 80], 0.9, unit((0, 0.6), (1, 0.8))),
                                      ([20, 20, 50, 80], 0.9, unit((0, 0.8), (2, 0.6)))),
        "c1s3_000500.jpg": detections(([0, 0, 30, 60], 0.9, unit((3, 1)))),
    }
    queries = [{"image": "c3s2_000300.jpg", "box": [10, 10, 40, 70], "embedding": unit((0, 1))},
               {"image": "c4s1_000400.jpg", "box": [20, 20, 50, 80], "embedding": unit((2, 1))}]
    results = tmp_path / "prw_results.npz"
    save_results(results, gallery, queries)
    printed, metrics = run_tool(results, "--protocol", "prw", "--dataset-root", str(tmp_path), output=tmp_path / "m.json")
    assert metrics == pytest.approx({"mAP": 0.25, "top1": 0.0, "top5": 0.5, "top10": 0.5})
    assert "| mAP | 25.00% |" in printed and "| top1 | 0.00% |" in printed
