#!/usr/bin/env python
"""The runs of the learning tests (tests/test_learning_*.py) for several seeds: how far each method
gets above its untrained model, and how much that moves from seed to seed.

    python benchmarks/learning_margins.py --seeds 0 1 [--methods baseline spnet_oc spnet_qc_oc psdiff ola ...] [--root DIR]

Each method trains as its test does (tests/learning_fixtures.py: the learning SynthPS, the setups
QUICKSTART, SPNET_OC, SPNET_QC + SPNET_OC_AFTER_QC, PSDIFF). PSDiff's teacher is the baseline run of
the same seed. OLA trains on boxes only; its Table 1 rows (ola_base: no PM, CAC or DMBE; ola_pm;
ola_pm_cac; ola = all three) and plain instance discrimination (ola_instance: ola_base with every box
its own class, DBSCAN eps 1e-6), ola_reliability (OLA with SpCL's reliability criterion) and ola_k2_1 /
ola_k2_2 (query expansion over 1 / 2 neighbours instead of 6), ola_start1 / 2 / 3 / 4 (every box its own
class for the first 1 / 2 / 3 / 4 epochs, clustering from then on; ola_start4 never clusters in the 4
epochs) and ola_start2_k2_2 (both) change only PS.OLA switches; ola_checkpoints
(ola_instance_checkpoints) is ola (ola_instance) saving a checkpoint at the end of each 30-iteration
epoch (model_0000029.pth, ...: the memory each epoch's clustering reads, for ola_small_clustering.py
--memory and ola_memory_drift.py --run), as do ola_k2_* and ola_start*. Prints one row per run
(untrained -> trained, percentages) and the mean and spread (max - min) of each gain; the tests' margins
must stay well outside that spread.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the learning setups the tests use

from learning_fixtures import (  # noqa: E402
    QUERY_SET,
    make_learning_data,
    run_ola,
    run_psdiff,
    run_quickstart,
    run_spnet_oc,
    run_spnet_qc_then_oc,
)

METRICS = (("det AP", "det/AP"), ("det recall", "det/recall"), ("mAP", f"{QUERY_SET}/mAP"),
           ("top-1", f"{QUERY_SET}/top1"), ("GT mAP", f"{QUERY_SET}/gt_mAP"))
OLA_BASE = ("PS.OLA.PM.ENABLED", False, "PS.OLA.CLUSTER.CONTEXT", False, "PS.OLA.DMBE.ENABLED", False)
OLA_RUNS = {
    "ola": (),
    "ola_base": OLA_BASE,
    "ola_pm": OLA_BASE[2:],
    "ola_pm_cac": OLA_BASE[4:],
    "ola_instance": OLA_BASE + ("PS.OLA.CLUSTER.EPS", 1e-6),
    "ola_reliability": ("PS.OLA.CLUSTER.RELIABILITY", True),
    "ola_checkpoints": ("SOLVER.CHECKPOINT_PERIOD", 30),  # ola, with a checkpoint at each epoch's end
    "ola_instance_checkpoints": OLA_BASE + ("PS.OLA.CLUSTER.EPS", 1e-6, "SOLVER.CHECKPOINT_PERIOD", 30),
    "ola_k2_1": ("PS.OLA.CLUSTER.K2", 1, "SOLVER.CHECKPOINT_PERIOD", 30),  # no query expansion
    "ola_k2_2": ("PS.OLA.CLUSTER.K2", 2, "SOLVER.CHECKPOINT_PERIOD", 30),
    "ola_start1": ("PS.OLA.CLUSTER.START_EPOCH", 1, "SOLVER.CHECKPOINT_PERIOD", 30),
    "ola_start2": ("PS.OLA.CLUSTER.START_EPOCH", 2, "SOLVER.CHECKPOINT_PERIOD", 30),
    "ola_start3": ("PS.OLA.CLUSTER.START_EPOCH", 3, "SOLVER.CHECKPOINT_PERIOD", 30),
    "ola_start4": ("PS.OLA.CLUSTER.START_EPOCH", 4, "SOLVER.CHECKPOINT_PERIOD", 30),  # OLA's losses, no clustering
    "ola_start2_k2_2": ("PS.OLA.CLUSTER.START_EPOCH", 2, "PS.OLA.CLUSTER.K2", 2, "SOLVER.CHECKPOINT_PERIOD", 30),
}
METHODS = ("baseline", "spnet_oc", "spnet_qc_oc", "psdiff") + tuple(OLA_RUNS)


def run(method, data, seed, teachers):
    if method == "baseline":
        teachers[seed] = run_quickstart(data, seed)
        return teachers[seed]
    if method == "spnet_oc":
        return run_spnet_oc(data, seed)
    if method == "spnet_qc_oc":
        return run_spnet_qc_then_oc(data, seed)[1]
    if method in OLA_RUNS:
        return run_ola(data, seed, OLA_RUNS[method])
    if seed not in teachers:
        teachers[seed] = run_quickstart(data, seed)
    return run_psdiff(data, teachers[seed], seed)


def table(rows):
    header = "| method | seed | " + " | ".join(name for name, _ in METRICS) + " | train + eval s |"
    lines = [header, "|---|---:|" + "---:|" * (len(METRICS) + 1)]
    for method, seed, result, seconds in rows:
        cells = [f"{100 * result.untrained[key]:.1f} → {100 * result.trained[key]:.1f}" for _, key in METRICS]
        lines.append(f"| {method} | {seed} | " + " | ".join(cells) + f" | {seconds:.0f} |")
    return "\n".join(lines)


def gains(rows):
    lines = ["| method | " + " | ".join(f"{name} gain (mean, spread)" for name, _ in METRICS) + " |",
             "|---|" + "---:|" * len(METRICS)]
    for method in dict.fromkeys(r[0] for r in rows):
        results = [r[2] for r in rows if r[0] == method]
        cells = []
        for _, key in METRICS:
            values = [100 * (r.trained[key] - r.untrained[key]) for r in results]
            cells.append(f"{sum(values) / len(values):+.1f} ({max(values) - min(values):.1f})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS[:4]))
    parser.add_argument("--root", help="where data and runs are written (default: a temporary folder)")
    args = parser.parse_args()
    data = make_learning_data(args.root or tempfile.mkdtemp(prefix="learning_margins_"))
    rows, teachers = [], {}
    for method in args.methods:
        for seed in args.seeds:
            start = time.perf_counter()
            rows.append((method, seed, run(method, data, seed, teachers), time.perf_counter() - start))
            print(table(rows[-1:]), flush=True)
    print("\n" + table(rows) + "\n\n" + gains(rows))


if __name__ == "__main__":
    main()
