#!/usr/bin/env python
"""Inference time per gallery image: SPNet-S, SPNet-L-R50 and the baseline, random init.

    python benchmarks/bench_spnet_speed.py [--sizes 512 1024 900x1500] [--images 3] [--device cpu]
        [--amp] [--channels-last]

Each model is built from its config with random weights (MODEL.WEIGHTS "", PS.BACKBONE.WEIGHTS
"", PS.REID.NUM_PIDS 5532 so that no dataset is read), in eval mode, and runs one warm-up image and
then --images random S x S (or H x W, for a size written "HxW") uint8 images one at a time, as
gallery inputs (detection + re-id embeddings of every detection, GT mAP off). The time is the mean
wall time of `model([input])` per image; the image is given at that size (no test-time resize):
PRW's 1920 x 1080 frames at the test resize (short side 900, long side <= 1500) are "844x1500".
--amp runs the forward under torch.autocast (float16 on CUDA, bfloat16 on CPU); --channels-last
puts the weights in channels-last memory format (convolution outputs follow it). Random weights
make the number of detections (and so the re-id work) arbitrary, so by default every score passes
(PS.SPNET.TEST.SCORE_THRESH -1: FixedNorm scores of a random model can underflow to 0;
MODEL.ROI_HEADS.SCORE_THRESH_TEST 0) and every model returns up to its maximum detections per image
after NMS (300 SPNet, TEST.DETECTIONS_PER_IMAGE 100 for the baseline); --config-thresholds keeps
the configs' thresholds. Prints a markdown table.
"""
import argparse
import contextlib
import time
from pathlib import Path

import torch
from detectron2.modeling import build_model

from ps_plugin.config import get_ps_cfg

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MODELS = {
    "SPNet-S (ConvNeXt-T)": "spnet_s.yaml",
    "SPNet-L-R50": "spnet_l_r50.yaml",
    "baseline (R50-C4 OIM)": "baseline_r50_cuhk.yaml",
}


def random_model_cfg(config_name, device, zero_thresholds=True, opts=()):
    """The config of configs/<config_name> (then the KEY VALUE list `opts`) for a random-weight model
    on `device` that reads no dataset (every detection score passes with `zero_thresholds`)."""
    cfg = get_ps_cfg()
    cfg.merge_from_file(str(CONFIGS / config_name))
    cfg.merge_from_list(list(opts))
    cfg.MODEL.DEVICE = device
    cfg.MODEL.WEIGHTS = ""
    cfg.PS.BACKBONE.WEIGHTS = ""
    cfg.PS.REID.NUM_PIDS = 5532  # the OIM table size of CUHK-SYSU train: no dataset is read
    if zero_thresholds:
        cfg.PS.SPNET.TEST.SCORE_THRESH = -1.0
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    return cfg


def build_random_model(config_name, device, zero_thresholds=True, opts=()):
    """The model of random_model_cfg(...) with random weights (seed 0), in eval mode on `device`."""
    torch.manual_seed(0)
    return build_model(random_model_cfg(config_name, device, zero_thresholds, opts)).eval()


def parse_size(text):
    """"512" -> (512, 512); "844x1500" -> (844, 1500) as (height, width)."""
    parts = [int(p) for p in text.lower().split("x")]
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 32:
        raise argparse.ArgumentTypeError(f"size {text!r}: use S or HxW with sides of at least 32 px")
    return tuple(parts)


def size_label(size):
    """(512, 512) -> "512"; (844, 1500) -> "844x1500"."""
    height, width = size
    return str(height) if height == width else f"{height}x{width}"


def forward_context(device, amp):
    """torch.autocast for --amp (float16 on CUDA, bfloat16 on CPU), else a no-op context."""
    if not amp:
        return contextlib.nullcontext()
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    return torch.autocast(device_type, dtype=torch.float16 if device_type == "cuda" else torch.bfloat16)


def image_seconds(model, size, num_images, device, amp=False):
    """Wall seconds of each of `num_images` images of `size` (H, W), after one warm-up image, and
    the detections of each; a list of floats and a list of ints."""
    height, width = size
    generator = torch.Generator().manual_seed(height if height == width else height * 10000 + width)
    images = [torch.randint(0, 256, (3, height, width), generator=generator, dtype=torch.uint8)
              for _ in range(num_images + 1)]
    seconds, detections = [], []
    with torch.inference_mode(), forward_context(device, amp):
        for index, image in enumerate(images):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            output = model([{"image": image.to(device), "height": height, "width": width}])[0]
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if index > 0:
                seconds.append(time.perf_counter() - start)
                detections.append(len(output["instances"]))
    return seconds, detections


def time_per_image(model, size, num_images, device, amp=False):
    """Mean seconds per image of `size` (H, W) over `num_images` (after one warm-up); also the mean detections."""
    seconds, detections = image_seconds(model, size, num_images, device, amp)
    return sum(seconds) / len(seconds), sum(detections) / len(detections)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[(512, 512), (1024, 1024)],
                        help="image sizes: S (square) or HxW, e.g. 844x1500 for PRW at the test resize")
    parser.add_argument("--images", type=int, default=3, help="timed images per model and size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--amp", action="store_true", help="autocast (float16 on CUDA, bfloat16 on CPU)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last weights")
    parser.add_argument("--config-thresholds", action="store_true",
                        help="keep the configs' detection score thresholds (default: 0, maximum detections)")
    args = parser.parse_args()
    thresholds = "configs'" if args.config_thresholds else "none (maximum detections)"
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, {args.images} images per row, "
          f"score thresholds {thresholds}, amp {args.amp}, channels-last {args.channels_last}")
    print("| model | config | image px | s / image | images / s | detections / image |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        model = build_random_model(MODELS[name], args.device, zero_thresholds=not args.config_thresholds)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        for size in args.sizes:
            seconds, detections = time_per_image(model, size, args.images, args.device, args.amp)
            row = [name, f"configs/{MODELS[name]}", size_label(size), f"{seconds:.2f}", f"{1 / seconds:.2f}",
                   f"{detections:.0f}"]
            print("| " + " | ".join(map(str, row)) + " |", flush=True)
        del model


if __name__ == "__main__":
    main()
