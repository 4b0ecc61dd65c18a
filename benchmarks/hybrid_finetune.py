#!/usr/bin/env python
"""Fine-tune the quickstart model on SynthPS from several initialisations (hybrid pre-training's Fig. 5 on
data we have): search mAP, top-1, GT mAP and detection AP after a given number of iterations.

    python benchmarks/hybrid_finetune.py --iters 150 --seed 0 --init imagenet= \
        --init hybrid-backbone=weights/hybrid_backbone.pth --init hybrid-all=weights/hybrid_all.pth

Each --init NAME=PATH is one run of configs/quick_schedules/quickstart.yaml with MODEL.WEIGHTS PATH (empty:
the ImageNet MobileNetV2 of PS.BACKBONE.WEIGHTS only), SOLVER.MAX_ITER --iters (the cosine schedule spans
them), SEED --seed and any trailing KEY VALUE overrides, one after the other. --tag names the setting of the
overrides (e.g. "60%" for `PS.DATA.TRAIN_IMAGE_FRACTION 0.6`; default: the overrides themselves). Every run
appends a row to <root>/results.jsonl; the table printed at the end covers every row there: mean and spread
(max - min) over the seeds of each (initialisation, setting, iterations), one column per metric.

    python benchmarks/hybrid_finetune.py --iters 150 --seed 0 --tag 60% --init imagenet= \
        PS.DATA.TRAIN_IMAGE_FRACTION 0.6

Without --init it only prints the table; --plot PATH also draws search mAP against the share of training images
(the rows tagged "N%", untagged rows counting as 100 %) for each initialisation at --iters, like the paper's Fig. 5.
"""
import argparse
import json
import os
from collections import defaultdict

import ps_plugin  # noqa: F401  (registers datasets and models)
from ps_plugin.config import setup_cfg
from ps_plugin.engine import PersonSearchTrainer

CONFIG = "configs/quick_schedules/quickstart.yaml"
METRICS = (("search mAP", "{query}/mAP"), ("top-1", "{query}/top1"), ("GT mAP", "{query}/gt_mAP"), ("det AP", "det/AP"))


def finetune(name, weights, iters, seed, root, extra_opts=(), tag=""):
    """One fine-tuning run (config overrides `extra_opts` last) -> {"init", "setting", "iters", "seed",
    metric name: percentage}."""
    setting = "".join(c if c.isalnum() else "_" for c in tag)
    output_dir = os.path.join(root, f"{name}{'_' + setting if setting else ''}_it{iters}_s{seed}")
    opts = ["MODEL.WEIGHTS", weights, "SOLVER.MAX_ITER", iters, "SEED", seed, "OUTPUT_DIR", output_dir,
            "SOLVER.CHECKPOINT_PERIOD", iters, *extra_opts]
    cfg = setup_cfg(config_file=CONFIG, opts=[str(o) for o in opts])
    trainer = PersonSearchTrainer(cfg)
    trainer.resume_or_load(resume=False)
    query, gallery = cfg.DATASETS.TEST[0], "synthps_gallery"
    metrics = trainer.train()[gallery]["person_search"]
    row = {"init": name, "setting": tag, "iters": iters, "seed": seed}
    row.update({label: 100 * metrics[key.format(query=query)] for label, key in METRICS})
    return row


def mean_and_range(values):
    """(mean, min, max) of a list of numbers."""
    return sum(values) / len(values), min(values), max(values)


def table(rows):
    """Markdown table: one line per (init, setting, iters), each metric as mean (spread) over its seeds."""
    groups = defaultdict(list)
    for row in rows:
        groups[(row["init"], row.get("setting", ""), row["iters"])].append(row)
    lines = ["| initialisation | setting | iterations | seeds | " + " | ".join(label for label, _ in METRICS) + " |",
             "|---|---|---:|---|" + "---:|" * len(METRICS)]
    for (init, setting, iters), runs in groups.items():
        cells = []
        for label, _ in METRICS:
            mean, low, high = mean_and_range([r[label] for r in runs])
            spread = f" ({high - low:.1f})" if len(runs) > 1 else ""
            cells.append(f"{mean:.1f}{spread}")
        seeds = ", ".join(str(r["seed"]) for r in runs)
        lines.append(f"| {init} | {setting} | {iters} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def image_share(setting):
    """Percentage of training images of a row's setting: "60%" -> 60, "" -> 100, anything else -> None."""
    if not setting:
        return 100
    return int(setting[:-1]) if setting.endswith("%") and setting[:-1].isdigit() else None


def plot_fig5(rows, iters, path, metric="search mAP"):
    """PNG: `metric` against the share of training images, one line per initialisation measured at two or more
    shares (mean over seeds, bars from min to max)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = defaultdict(lambda: defaultdict(list))
    for row in rows:
        share = image_share(row.get("setting", ""))
        if row["iters"] == iters and share is not None:
            curves[row["init"]][share].append(row[metric])
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for init, points in sorted(curves.items()):
        shares = sorted(points)
        if len(shares) < 2:
            continue
        means, lows, highs = zip(*(mean_and_range(points[x]) for x in shares))
        below = [m - low for m, low in zip(means, lows)]
        above = [high - m for m, high in zip(means, highs)]
        ax.errorbar(shares, means, yerr=[below, above], marker="o", capsize=3, label=init)
    ax.set_xlabel("training images used for fine-tuning (%)")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(f"Fine-tuning for {iters} iterations")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", action="append", default=[], metavar="NAME=PATH",
                        help="an initialisation: MODEL.WEIGHTS PATH (empty: ImageNet backbone only)")
    parser.add_argument("--iters", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default="output/hybrid_finetune")
    parser.add_argument("--tag", default=None, help="name of the overrides' setting (default: the overrides)")
    parser.add_argument("--plot", default="", metavar="PATH", help="PNG of search mAP against the image share")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ... for every run")
    args = parser.parse_args(argv)
    os.makedirs(args.root, exist_ok=True)
    results = os.path.join(args.root, "results.jsonl")
    for spec in args.init:
        if "=" not in spec:
            parser.error(f"--init {spec!r}: write NAME=PATH (PATH may be empty)")
        name, weights = spec.split("=", 1)
        tag = " ".join(args.opts) if args.tag is None else args.tag
        row = finetune(name, weights, args.iters, args.seed, args.root, args.opts, tag)
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")
    with open(results) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    print(table(rows))
    if args.plot:
        plot_fig5(rows, args.iters, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
