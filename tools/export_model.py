#!/usr/bin/env python
"""Export a model's gallery path (detect + embed, one image) to TorchScript and/or ONNX.

    python tools/export_model.py --config-file configs/quick_schedules/quickstart.yaml --output output/export \
        MODEL.WEIGHTS output/quickstart/model_final.pth
    # then, without ps_plugin or torch:  onnxruntime.InferenceSession("output/export/gallery.onnx")

Writes <output>/gallery.ts (torch.jit.load) and <output>/gallery.onnx (ONNX Runtime, CPU). Both take
one image [3, H, W] float32 in INPUT.FORMAT, already resized by the test-time ResizeShortestEdge
(INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST), any H and W, and return boxes [N, 4] (XYXY, in that image),
scores [N] and embeddings [N, D]; scale boxes back to the original image yourself.
After export the tool runs each exported file on an image of another size than the trace input and
prints its largest difference from PyTorch (ps_plugin.export; docs/BENCHMARKS.md "Exported models").
Exports the baseline (PersonSearchRCNN); SPNet and PSDiff: see docs/BENCHMARKS.md.
"""
import argparse
import logging
from pathlib import Path

import torch
from detectron2.utils.logger import setup_logger

import ps_plugin  # noqa: F401  (registers datasets, meta-architectures, heads)
from ps_plugin.config import setup_cfg
from ps_plugin.export import GalleryGraph, OnnxGallery, export_onnx, trace_gallery
from ps_plugin.search import PersonSearchPredictor, require_weights

logger = logging.getLogger("ps_plugin.export")
FORMATS = ("torchscript", "onnx")


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE", help="model config yaml")
    parser.add_argument("--output", required=True, help="folder for gallery.ts / gallery.onnx")
    parser.add_argument("--format", nargs="+", choices=FORMATS, default=list(FORMATS), help="what to export")
    parser.add_argument("--allow-untrained", action="store_true",
                        help="export without MODEL.WEIGHTS (random heads: for testing the pipeline only)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ...")
    return parser


def example_images(cfg):
    """Two random images [3, H, W] (0-255 float32) the test-time resize could produce: the trace
    input (short side MIN_SIZE_TEST, 4:3) and a check image of another size (3:4, smaller)."""
    short = cfg.INPUT.MIN_SIZE_TEST
    long_side = min(cfg.INPUT.MAX_SIZE_TEST, round(short * 4 / 3))
    generator = torch.Generator().manual_seed(0)
    trace = torch.rand(3, short, long_side, generator=generator) * 255
    check = torch.rand(3, long_side - 32, short - 32, generator=generator) * 255
    return trace, check


def largest_difference(expected, got):
    """Max |a - b| over the outputs (boxes, scores, embeddings); inf when the detection counts differ."""
    differences = []
    for want, have in zip(expected, got):
        have = torch.as_tensor(have)
        if have.shape != want.shape:
            return float("inf")
        differences.append((have - want).abs().max().item() if want.numel() else 0.0)
    return max(differences)


def main(args):
    setup_logger(name="ps_plugin")
    cfg = setup_cfg(args)
    require_weights(cfg, args.allow_untrained)
    model = PersonSearchPredictor(cfg).model.to("cpu")
    trace_image, check_image = example_images(cfg)
    with torch.no_grad():
        expected = GalleryGraph(model)(check_image)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    if "torchscript" in args.format:
        path = output / "gallery.ts"
        traced = trace_gallery(model, trace_image)
        traced.save(str(path))
        with torch.no_grad():
            got = torch.jit.load(str(path))(check_image)
        logger.info(f"wrote {path}; max |TorchScript - PyTorch| = {largest_difference(expected, got):.2e}")
    if "onnx" in args.format:
        path = export_onnx(model, trace_image, output / "gallery.onnx")
        got = tuple(OnnxGallery(path)(check_image).values())
        logger.info(f"wrote {path}; max |ONNX Runtime - PyTorch| = {largest_difference(expected, got):.2e}")


if __name__ == "__main__":
    main(get_parser().parse_args())
