#!/usr/bin/env python
"""CPU time per gallery image of every model family at one common size, in one run (so the ratios
compare): the quickstart model, the baseline with R50-C4 and R50-FPN, SPNet-S, PSDiff tiny at 1 and
8 sampling steps.

    python benchmarks/cpu_speed_table.py [--size 480x640] [--images 3] [--json out.json]

Each model is built with random weights by bench_spnet_speed.build_random_model (every detection
score passes, so each model does its maximum detection and re-id work) and timed by
bench_spnet_speed.image_seconds: one warm-up image, then --images random images of --size one at a
time (gallery mode, no test-time resize), float32, the current torch thread count. The common size
defaults to SynthPS's largest camera (480 x 640).
"""
import argparse
import json
import statistics

import torch

from bench_spnet_speed import build_random_model, image_seconds, parse_size, size_label

# The baseline with Detectron2's standard R50-FPN Faster R-CNN box branch (no config file holds it).
R50_FPN = (
    "MODEL.BACKBONE.NAME", "build_resnet_fpn_backbone",
    "MODEL.RESNETS.OUT_FEATURES", ["res2", "res3", "res4", "res5"],
    "MODEL.FPN.IN_FEATURES", ["res2", "res3", "res4", "res5"],
    "MODEL.ANCHOR_GENERATOR.SIZES", [[32], [64], [128], [256], [512]],
    "MODEL.RPN.IN_FEATURES", ["p2", "p3", "p4", "p5", "p6"],
    "MODEL.ROI_HEADS.NAME", "PersonSearchStandardROIHeads",
    "MODEL.ROI_HEADS.IN_FEATURES", ["p2", "p3", "p4", "p5"],
    "MODEL.ROI_BOX_HEAD.NAME", "FastRCNNConvFCHead",
    "MODEL.ROI_BOX_HEAD.NUM_FC", 2,
    "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", 7,
)
# (family, config, KEY VALUE overrides)
MODELS = [
    ("quickstart (MobileNetV2, baseline)", "quick_schedules/quickstart.yaml", ()),
    ("baseline R50-C4 OIM", "baseline_r50_cuhk.yaml", ()),
    ("baseline R50-FPN OIM", "baseline_r50_cuhk.yaml", R50_FPN),
    ("SPNet-S (ConvNeXt-T)", "spnet_s.yaml", ()),
    ("PSDiff tiny, 1 step", "quick_schedules/psdiff_tiny_ddet_synthps.yaml", ("PS.PSDIFF.SAMPLE_STEPS", 1)),
    ("PSDiff tiny, 8 steps", "quick_schedules/psdiff_tiny_ddet_synthps.yaml", ("PS.PSDIFF.SAMPLE_STEPS", 8)),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=(480, 640), help="S or HxW (default 480x640)")
    parser.add_argument("--images", type=int, default=3, help="timed images per model")
    parser.add_argument("--json", default="", help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    print(f"CPU, torch threads {torch.get_num_threads()}, {size_label(args.size)} px, {args.images} images per row, "
          "random weights, score thresholds off")
    print("| model | config | s / image (median) | images / s | detections / image | parameters (M) |")
    print("|---|---|---|---|---|---|")
    rows = []
    for family, config, opts in MODELS:
        model = build_random_model(config, "cpu", opts=opts)
        seconds, detections = image_seconds(model, args.size, args.images, "cpu")
        median = statistics.median(seconds)
        rows.append({"model": family, "config": config, "s_per_image": median, "detections": statistics.mean(detections),
                     "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6})
        row = rows[-1]
        print(f"| {family} | configs/{config} | {median:.3f} | {1 / median:.2f} | {row['detections']:.0f} "
              f"| {row['parameters_m']:.1f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": size_label(args.size), "threads": torch.get_num_threads(), "rows": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
