#!/usr/bin/env python
"""Train the paper-default tiny PSDiff (configs/quick_schedules/psdiff_tiny_synthps.yaml: 1 CDL,
Hungarian matching, cascaded prediction, dynamic conv, L_reid on the raw ê0) on the learning SynthPS
of the tests, with config overrides, and print its search metrics.

    python benchmarks/psdiff_tiny_runs.py --root output/psdiff_tiny_runs --iters 1500 --seed 0 \
        PS.PSDIFF.EMBED_SIGNAL sqrt_dim

Every run of one --root shares one teacher: the quickstart baseline of tests/learning_fixtures.py
(seed 0), trained on the first call and reused afterwards. One run per call, so that each fits a
turn of the shared CPU; every result is appended to <root>/results.jsonl and the table of all runs
so far is printed.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the learning setups the tests use

from run_log import append_record, percent_cells  # noqa: E402
from learning_fixtures import (  # noqa: E402
    QUERY_SET,
    LearningSetup,
    TrainedRun,
    learning_cfg,
    make_learning_data,
    run_quickstart,
    train,
    trained_metrics,
)

CONFIG = "psdiff_tiny_synthps.yaml"
METRICS = (("det AP", "det/AP"), ("mAP", f"{QUERY_SET}/mAP"), ("top-1", f"{QUERY_SET}/top1"),
           ("GT mAP", f"{QUERY_SET}/gt_mAP"))


def teacher(data):
    """The seed-0 quickstart run under data.root, trained once."""
    output_dir = Path(data.root) / "quickstart_seed0"
    config_file, weights = output_dir / "config.yaml", output_dir / "model_final.pth"
    if config_file.exists() and weights.exists():
        return TrainedRun(None, config_file, weights, {}, {})
    return run_quickstart(data, seed=0)


def run_psdiff(data, teacher_run, seed, iters, opts):
    name = "psdiff_" + "_".join([f"it{iters}", f"seed{seed}"] + [str(o).split(".")[-1] for o in opts])
    cfg = learning_cfg(LearningSetup(CONFIG, iters, tuple(opts)), data, name, seed)
    cfg.PS.PSDIFF.TEACHER.CONFIG_FILE = str(teacher_run.config_file)
    cfg.PS.PSDIFF.TEACHER.WEIGHTS = str(teacher_run.weights)
    return trained_metrics(cfg, train(cfg))


def table(records):
    lines = ["| overrides | iterations | seed | " + " | ".join(n for n, _ in METRICS) + " | train + eval s |",
             "|---|---:|---:|" + "---:|" * (len(METRICS) + 1)]
    for r in records:
        cells = percent_cells(r["metrics"], [key for _, key in METRICS])
        lines.append(f"| {' '.join(map(str, r['opts'])) or '(paper default)'} | {r['iters']} | {r['seed']} | {cells} "
                     f"| {r['seconds']:.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="data, teacher and runs are written here")
    parser.add_argument("--iters", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--teacher-only", action="store_true", help="train (or find) the teacher and stop")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args()
    data = make_learning_data(args.root)
    teacher_run = teacher(data)
    if args.teacher_only:
        return
    start = time.perf_counter()
    metrics = run_psdiff(data, teacher_run, args.seed, args.iters, args.opts)
    record = {"opts": args.opts, "iters": args.iters, "seed": args.seed, "metrics": metrics,
              "seconds": time.perf_counter() - start}
    print(table(append_record(args.root, record)))


if __name__ == "__main__":
    main()
