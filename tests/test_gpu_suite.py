"""benchmarks/gpu_suite.py keeps working while no GPU is around: its --smoke mode runs every task's
code path on CPU, a failing config is recorded while the others go on, and the budget skips."""
import json
import sys

import pytest

from common import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))  # the benchmark scripts import each other by name

import gpu_suite  # noqa: E402


def read(out):
    report = json.loads((out / "gpu_suite.json").read_text())
    return report["rows"], (out / "gpu_suite.md").read_text()


def test_budget_skips_what_does_not_fit_and_still_reports(tmp_path):
    gpu_suite.main(["--smoke", "--budget-s", "0", "--out", str(tmp_path)])
    rows, table = read(tmp_path)
    assert [(r["task"], r["case"]) for r in rows] == (
        [("inference", c.name) for c in gpu_suite.CASES]
        + [("training", c.name) for c in gpu_suite.CASES if c.train]
        + [("evaluator", "SynthPS (generated)")]
    )
    assert {r["status"] for r in rows} == {"skipped"}
    assert table.count("| skipped: ") == len(rows) and "### training" in table


def test_a_failing_config_is_recorded_and_the_next_one_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_suite, "CASES", [
        gpu_suite.Case("broken", "no_such_config.yaml", (gpu_suite.CUHK_SIZE,)),
        gpu_suite.Case("quickstart", "quick_schedules/quickstart.yaml", (gpu_suite.CUHK_SIZE,)),
    ])
    gpu_suite.main(["--smoke", "--out", str(tmp_path), "--skip", "training", "evaluator"])
    (broken, quickstart), table = read(tmp_path)
    assert broken["status"] == "error" and "no_such_config.yaml" in broken["error"]
    assert quickstart["status"] == "ok" and quickstart["size"] == "96x128" and quickstart["ms_median"] > 0
    assert quickstart["ms_p90"] >= quickstart["ms_median"] and quickstart["detections"] > 0
    assert "| quickstart | 96x128 |" in table and "| broken | 96x128 |" in table


@pytest.mark.slow  # every full-size config built, run and trained one step on CPU: ~60 s on 2 cores
def test_smoke_runs_every_config_inference_and_training_step(tmp_path):
    gpu_suite.main(["--smoke", "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")])
    rows, _ = read(tmp_path / "out")
    failed = [(r["task"], r["case"], r.get("error")) for r in rows if r["status"] != "ok"]
    assert not failed
    training = [r for r in rows if r["task"] == "training"]
    assert len(training) == sum(c.train for c in gpu_suite.CASES) and all(r["s_per_iter"] > 0 for r in training)
    evaluator = next(r for r in rows if r["task"] == "evaluator")
    assert 0 < evaluator["mAP_plain"] <= 100 and evaluator["queries"] > 0
