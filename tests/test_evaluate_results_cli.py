"""tools/evaluate_results.py end to end: a results pickle and the real protocol file formats
(format_fixtures.py) in, the printed table and the --output JSON out, against hand-worked metrics."""
import json
import subprocess
import sys

import numpy as np
import pytest

from common import REPO_ROOT
from format_fixtures import write_cuhk_sysu, write_prw
from ps_plugin.evaluation import save_results

pytestmark = pytest.mark.slow  # each run of the tool imports torch and Detectron2 afresh (~5 s CPU)


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


def run_tool(results, *args, output):
    completed = subprocess.run(
        [sys.executable, "tools/evaluate_results.py", str(results), *args, "--output", str(output)],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )
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
    results = tmp_path / "results.pkl"
    save_results(results, gallery, queries)

    printed, metrics = run_tool(results, "--protocol", "cuhk_sysu", "--protocol-file", protocol, output=tmp_path / "plain.json")
    assert metrics == pytest.approx({"mAP": 2 / 3, "top1": 0.5, "top5": 1.0, "top10": 1.0})
    assert "results.pkl: 2 queries, protocol cuhk_sysu" in printed
    assert "| mAP | 66.67% |" in printed and "| top1 | 50.00% |" in printed

    printed, metrics = run_tool(results, "--protocol", "cuhk_sysu", "--protocol-file", protocol, "--cbgm",
                                output=tmp_path / "cbgm.json")
    assert metrics == pytest.approx({"mAP": 1.0, "top1": 1.0, "top5": 1.0, "top10": 1.0})
    assert "| mAP | 100.00% |" in printed and "| top1 | 100.00% |" in printed


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
    results = tmp_path / "prw_results.pkl"
    save_results(results, gallery, queries)
    printed, metrics = run_tool(results, "--protocol", "prw", "--dataset-root", str(tmp_path), output=tmp_path / "m.json")
    assert metrics == pytest.approx({"mAP": 0.25, "top1": 0.0, "top5": 0.5, "top10": 0.5})
    assert "| mAP | 25.00% |" in printed and "| top1 | 0.00% |" in printed
