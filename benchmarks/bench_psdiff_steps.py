#!/usr/bin/env python
"""PSDiff "elastic computing" curve (Jia et al., Fig. 5): one trained checkpoint evaluated with 1, 2, 4 and 8
DDIM steps (PS.PSDIFF.SAMPLE_STEPS overridden), person-search mAP / top-1 and gallery time per image.

    python benchmarks/bench_psdiff_steps.py --config-file configs/quick_schedules/psdiff_tiny_synthps.yaml \
        --weights output/psdiff_tiny_synthps/model_final.pth --steps 1 2 4 8 \
        --plot docs/images/psdiff_steps.png [--json out.json] [KEY VALUE ...]

Time per image: mean wall time of `model([gallery input])` (backbone + all sampling steps + NMS, batch 1)
over the first --timing-images gallery images after one warm-up image, on MODEL.DEVICE with the current
torch thread count. The accuracy columns come from PersonSearchTrainer.test (the trainer's evaluator).
"""
import argparse
import json
import time

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog
from detectron2.evaluation.testing import flatten_results_dict

import ps_plugin  # noqa: F401  (registers datasets and meta-architectures)
from ps_plugin.config import get_ps_cfg
from ps_plugin.data.mapper import PersonSearchDatasetMapper
from ps_plugin.engine import PersonSearchTrainer
from ps_plugin.engine.trainer import group_test_datasets
from ps_plugin.structures import GT_BOXES_FOR_REID


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--weights", required=True, help="trained PSDiff checkpoint (local path)")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--timing-images", type=int, default=20)
    parser.add_argument("--timing-only", action="store_true", help="skip the evaluation (accuracy columns NaN)")
    parser.add_argument("--plot", default="", help="PNG path of the mAP / top-1 / time-vs-steps plot")
    parser.add_argument("--json", default="", help="write the rows as JSON here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args()


def build_cfg(args, steps):
    cfg = get_ps_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.MODEL.WEIGHTS = args.weights
    cfg.PS.PSDIFF.SAMPLE_STEPS = steps
    cfg.freeze()
    return cfg


def load_model(cfg):
    model = PersonSearchTrainer.build_model(cfg)
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    return model.eval()


def gallery_inputs(cfg, num_images):
    """The first `num_images` mapped gallery inputs of the first DATASETS.TEST gallery (no GT boxes)."""
    gallery_name = next(iter(group_test_datasets(cfg.DATASETS.TEST)))
    mapper = PersonSearchDatasetMapper(cfg, is_train=False)
    inputs = [mapper(record) for record in DatasetCatalog.get(gallery_name)[: num_images + 1]]
    for x in inputs:
        x.pop(GT_BOXES_FOR_REID, None)
    return inputs


@torch.no_grad()
def seconds_per_image(model, inputs):
    """Mean wall seconds of one gallery image (batch 1), after one warm-up image."""
    model([inputs[0]])
    start = time.perf_counter()
    for x in inputs[1:]:
        model([x])
    return (time.perf_counter() - start) / max(len(inputs) - 1, 1)


def search_metrics(results):
    """(mAP, top-1, GT mAP) of the first query set of PersonSearchTrainer.test's
    {gallery: {"person_search": {"<query>/mAP": ...}}}."""
    metrics = flatten_results_dict(next(iter(results.values())))
    query = next(k for k in metrics if k.endswith("/mAP"))[: -len("/mAP")]
    return metrics[f"{query}/mAP"], metrics[f"{query}/top1"], metrics.get(f"{query}/gt_mAP", float("nan"))


def benchmark(args):
    rows = []
    for steps in args.steps:
        cfg = build_cfg(args, steps)
        model = load_model(cfg)
        torch.manual_seed(0)
        nan = float("nan")
        mean_ap, top1, gt_map = (nan, nan, nan) if args.timing_only else search_metrics(PersonSearchTrainer.test(cfg, model))
        seconds = seconds_per_image(model, gallery_inputs(cfg, args.timing_images))
        rows.append({"steps": steps, "mAP": mean_ap, "top1": top1, "gt_mAP": gt_map, "s_per_image": seconds})
    return rows


def print_table(rows):
    print("| steps | mAP (%) | top-1 (%) | GT mAP (%) | s / gallery image | images / s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['steps']} | {100 * r['mAP']:.2f} | {100 * r['top1']:.2f} | {100 * r['gt_mAP']:.2f} "
            f"| {r['s_per_image']:.3f} | {1 / r['s_per_image']:.2f} |"
        )


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["steps"] for r in rows]
    fig, (acc, speed) = plt.subplots(1, 2, figsize=(9, 3.5))
    acc.plot(steps, [100 * r["mAP"] for r in rows], "o-", label="mAP")
    acc.plot(steps, [100 * r["top1"] for r in rows], "s-", label="top-1")
    speed.plot(steps, [r["s_per_image"] for r in rows], "o-", color="tab:red")
    for ax in (acc, speed):
        ax.set_xscale("log", base=2)
        ax.set_xticks(steps, [str(s) for s in steps])
        ax.set_xlabel("DDIM sampling steps")
    acc.set_ylabel("%")
    acc.legend()
    speed.set_ylabel("s / gallery image (CPU)")
    fig.suptitle("PSDiff elastic computing on SynthPS")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    args = parse_args()
    if args.timing_images < 1:
        raise SystemExit(f"--timing-images {args.timing_images}: time at least 1 gallery image")
    rows = benchmark(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    print_table(rows)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
