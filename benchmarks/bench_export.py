#!/usr/bin/env python
"""CPU time per gallery image of the exported baseline (tools/export_model.py): PyTorch eager vs the
TorchScript trace vs ONNX Runtime, for the quickstart and realmini models at their test sizes.

    python benchmarks/bench_export.py [--images 5] [--models quickstart realmini]

Each model is built with random weights by bench_spnet_speed.build_random_model (every detection score
passes, so each run does the maximum detection and re-id work), traced / exported on one image and
timed on --images other random images of the same size (one warm-up first), one image at a time.
Threads: torch's current count for PyTorch and TorchScript, the same count for ONNX Runtime.
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench_spnet_speed import build_random_model
from ps_plugin.export import GalleryGraph, OnnxGraph, export_onnx, trace_gallery

# (name, config, test-time (H, W): the short side MIN_SIZE_TEST at 4:3, capped by MAX_SIZE_TEST)
MODELS = {
    "quickstart": ("quick_schedules/quickstart.yaml", (320, 427)),
    "realmini": ("quick_schedules/baseline_mnv2_realmini.yaml", (480, 640)),
}


def seconds_per_image(run, images):
    """Median and mean wall seconds of `run(image)` over `images[1:]` (images[0] warms up)."""
    seconds = []
    with torch.no_grad():
        for image in images:
            start = time.perf_counter()
            run(image)
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds[1:]), statistics.mean(seconds[1:])


def runners(model, trace_image, folder):
    """{"PyTorch": eager, "TorchScript": trace, "ONNX Runtime": session} on one image [3, H, W]."""
    session = OnnxGraph(export_onnx(model, trace_image, Path(folder) / "gallery.onnx"),
                        num_threads=torch.get_num_threads())
    return {"PyTorch": GalleryGraph(model), "TorchScript": trace_gallery(model, trace_image), "ONNX Runtime": session}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5, help="timed images per model and runtime")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}; random weights, every detection kept\n")
    print("| model | image (H x W) | runtime | ms/image (median) | ms/image (mean) | vs PyTorch |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        config, (height, width) = MODELS[name]
        model = build_random_model(config, "cpu")
        generator = torch.Generator().manual_seed(0)
        images = [torch.rand(3, height, width, generator=generator) * 255 for _ in range(args.images + 2)]
        with tempfile.TemporaryDirectory() as folder:
            timings = {runtime: seconds_per_image(run, images[1:])
                       for runtime, run in runners(model, images[0], folder).items()}
        for runtime, (median, mean) in timings.items():
            ratio = timings["PyTorch"][0] / median
            print(f"| {name} | {height} x {width} | {runtime} | {median * 1e3:.1f} | {mean * 1e3:.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
