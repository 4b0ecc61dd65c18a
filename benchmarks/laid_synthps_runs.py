#!/usr/bin/env python
"""LAID on SynthPS (labelled, style a) -> SynthPS style b (unlabelled), evaluated on style b's queries, or
SynthPS -> realmini (`--target realmini`, real frames, evaluated on realmini's queries): one training run of
configs/quick_schedules/laid_mnv2_synthps2b.yaml (laid_mnv2_synthps2realmini.yaml) per call
(tools/train_net.py), a named variant plus any overrides, its metrics appended to <root>/results.jsonl and
the table of every run so far printed.

    export DETECTRON2_DATASETS=/tmp/laid_ds   # python tools/generate_synthps.py [--style b] there
    python benchmarks/laid_synthps_runs.py --root /tmp/laid_runs --variant laid --seed 1
    python benchmarks/laid_synthps_runs.py --root /tmp/laid_runs --variant base --seed 1
    python benchmarks/laid_synthps_runs.py --root /tmp/laid_runs --variant source_only --seed 1
    python benchmarks/laid_synthps_runs.py --root /tmp/laid_runs --variant laid --seed 1 PS.LAID.TSA.MODE off
    python benchmarks/laid_synthps_runs.py --root /tmp/laid_realmini --target realmini --variant laid --seed 1

Variants, all with the same architecture, iterations and batches (2 source + 2 target images):
- source_only: the target images are never used (no pseudo labels, domain classifiers off);
- base: the DSCA pipeline LAID builds on (greedy max-IoU smoothing without the loose threshold, no
  L_intra, no TSA), with its domain classifiers and pseudo labels;
- laid: the paper's defaults (CAIM, DSCL, TSA).
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from run_log import append_record, percent_cells

REPO = Path(__file__).resolve().parents[1]
# target -> (config, gallery, query)
TARGETS = {
    "synthps_b": ("laid_mnv2_synthps2b.yaml", "synthps_b_gallery", "synthps_b_query"),
    "realmini": ("laid_mnv2_synthps2realmini.yaml", "realmini_gallery", "realmini_query"),
}
VARIANTS = {
    "source_only": ("PS.LAID.TARGET_REID_START", 1000000, "PS.LAID.DA.ENABLED", False),
    "base": ("PS.LAID.CAIM.LOOSE", False, "PS.LAID.CAIM.MATCHING", "greedy", "PS.LAID.DSCL.INTRA_LOSS", "none",
             "PS.LAID.TSA.MODE", "off"),
    "laid": (),
}
METRICS = (("search mAP", "{query}/mAP"), ("top-1", "{query}/top1"), ("GT mAP", "{query}/gt_mAP"),
           ("det AP", "det/AP"), ("det recall", "det/recall"))


def run(root, target, variant, seed, opts):
    """Train and evaluate one run -> its metrics dict (fractions)."""
    config, gallery, _ = TARGETS[target]
    name = "_".join([variant, f"seed{seed}"] + [str(o).split(".")[-1] for o in opts])
    output_dir = Path(root) / name
    overrides = [str(x) for x in (*VARIANTS[variant], *opts, "SEED", seed, "OUTPUT_DIR", output_dir)]
    command = [sys.executable, str(REPO / "tools" / "train_net.py"),
               "--config-file", str(REPO / "configs" / "quick_schedules" / config), *overrides]
    with open(output_dir.with_suffix(".log"), "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    with open(output_dir / "inference" / gallery / "person_search_metrics.json") as f:
        return json.load(f)


def table(records):
    """Markdown table of the records; a record without a target is a synthps_b run."""
    lines = ["| variant | overrides | seed | " + " | ".join(n for n, _ in METRICS) + " | minutes |",
             "|---|---|---:|" + "---:|" * (len(METRICS) + 1)]
    for r in records:
        query = TARGETS[r.get("target", "synthps_b")][2]
        cells = percent_cells(r["metrics"], [key.format(query=query) for _, key in METRICS])
        lines.append(f"| {r['variant']} | {' '.join(map(str, r['opts'])) or '-'} | {r['seed']} | {cells} "
                     f"| {r['seconds'] / 60:.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="runs and results.jsonl are written here")
    parser.add_argument("--target", choices=sorted(TARGETS), default="synthps_b")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="laid")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="further KEY VALUE config overrides")
    args = parser.parse_args()
    Path(args.root).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    metrics = run(args.root, args.target, args.variant, args.seed, args.opts)
    record = {"target": args.target, "variant": args.variant, "opts": args.opts, "seed": args.seed, "metrics": metrics,
              "seconds": time.perf_counter() - start}
    print(table(append_record(args.root, record)))


if __name__ == "__main__":
    main()
