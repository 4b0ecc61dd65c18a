#!/usr/bin/env python
"""Peak memory of one SPNet training iteration (forward + backward) on CPU, per config and crop size,
and how much of it the anchor path's [images, anchors, d] tensors account for.

    python benchmarks/spnet_train_memory.py [--configs configs/spnet_s.yaml configs/spnet_l.yaml]
        [--crops 256] [--images 2] [--sampled 256 512] [--opts PS.SPNET.BOX_EMBEDDER.CHECKPOINT_CHUNK 64]

Each (config, crop) runs in its own process, so its peak resident set size (ru_maxrss) is its own.
Random init (PS.SPNET.RANDOM_INIT), a synthetic batch of `--images` crops with 4 person boxes each.
"""
import argparse
import json
import resource
import subprocess
import sys

import torch


def one_iteration(config, crop, images, sampled, opts=()):
    """Peak RSS (MiB) before and after one training step, and the anchor count A and dimension d."""
    from detectron2.structures import Boxes, Instances
    from detectron2.utils.events import EventStorage

    from ps_plugin.config import setup_cfg
    from ps_plugin.engine import PersonSearchTrainer

    cfg = setup_cfg(config_file=config, opts=[
        "MODEL.DEVICE", "cpu", "PS.SPNET.RANDOM_INIT", True, "PS.REID.NUM_PIDS", 100, "PS.INPUT.CROP_SIZE", crop,
        "PS.SPNET.TRAIN.NUM_SAMPLED_ANCHORS", sampled] + list(opts))
    torch.manual_seed(0)
    model = PersonSearchTrainer.build_model(cfg).train()
    batch = []
    for i in range(images):
        inst = Instances((crop, crop))
        boxes = torch.tensor([[0.1, 0.1, 0.3, 0.7], [0.4, 0.2, 0.55, 0.8], [0.6, 0.1, 0.75, 0.5], [0.8, 0.3, 0.95, 0.9]])
        inst.gt_boxes = Boxes(boxes * crop)
        inst.gt_classes = torch.zeros(4, dtype=torch.int64)
        inst.gt_pids = torch.tensor([i, i + 10, -1, i + 20])
        inst.gt_box_ids = torch.arange(4)
        batch.append({"image": torch.randint(0, 255, (3, crop, crop), dtype=torch.uint8), "instances": inst,
                      "image_id": str(i), "height": crop, "width": crop})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with EventStorage():
        sum(model(batch).values()).backward()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with torch.no_grad():
        features = model.backbone(torch.zeros(1, 3, crop, crop))
        anchors, _ = model._anchor_path(features)
    return {"rss_model_mib": before, "rss_peak_mib": after, "anchors": len(anchors), "dim": cfg.PS.SPNET.EMBED_DIM}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["configs/spnet_s.yaml", "configs/spnet_l.yaml"])
    parser.add_argument("--crops", type=int, nargs="+", default=[256])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--sampled", type=int, nargs="+", default=[256, 512],
                        help="PS.SPNET.TRAIN.NUM_SAMPLED_ANCHORS (the paper's 2,048 needs many GB with a cascade)")
    parser.add_argument("--opts", nargs="*", default=[], help="further KEY VALUE config overrides")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_iteration(args.child[0], int(args.child[1]), args.images, int(args.child[2]), args.opts)))
        return
    print("| config | crop | images | sampled anchors | anchors A | model RSS MiB | peak RSS MiB | step MiB | B·A·d float32 MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for config in args.configs:
        for crop in args.crops:
            for sampled in args.sampled:
                command = [sys.executable, __file__, "--images", str(args.images), "--child", config, str(crop), str(sampled),
                           "--opts", *args.opts]
                out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
                r = json.loads(out)
                per_tensor = args.images * r["anchors"] * r["dim"] * 4 / 2**20
                print(f"| {config} | {crop} | {args.images} | {sampled} | {r['anchors']} | {r['rss_model_mib']:.0f} | "
                      f"{r['rss_peak_mib']:.0f} | {r['rss_peak_mib'] - r['rss_model_mib']:.0f} | {per_tensor:.0f} |", flush=True)


if __name__ == "__main__":
    main()
