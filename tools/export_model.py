#!/usr/bin/env python
"""Export a model's gallery path (detect + embed, one image) to TorchScript and/or ONNX.

    python tools/export_model.py --config-file configs/quick_schedules/quickstart.yaml --output output/export \
        MODEL.WEIGHTS output/quickstart/model_final.pth
    # then, without ps_plugin or torch:  onnxruntime.InferenceSession("output/export/gallery.onnx")

Writes <output>/gallery.ts + query.ts (torch.jit.load) and <output>/gallery.onnx + query.onnx (ONNX
Runtime, CPU), and <output>/export.json (the model's fingerprint and each file's SHA-256). The gallery
graph takes one image [3, H, W] float32 in INPUT.FORMAT, already resized by the test-time
ResizeShortestEdge (INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST), any H and W, and returns boxes [N, 4] (XYXY,
in that image), scores [N] and embeddings [N, D]; the query graph takes that image and boxes [K, 4] in
it and returns their embeddings [K, D]. tools/search.py --exported output/export/gallery.onnx (with
the same --config-file and overrides) indexes and queries with them (ps_plugin.search.ExportedPredictor).
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
from ps_plugin.export import EXPORT_MANIFEST, FORMAT_SUFFIXES, GalleryGraph, QueryGraph, load_graph, write_export
from ps_plugin.search import PersonSearchPredictor, require_weights

logger = logging.getLogger("ps_plugin.export")


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE", help="model config yaml")
    parser.add_argument("--output", required=True, help="folder for gallery / query .ts / .onnx and export.json")
    parser.add_argument("--format", nargs="+", choices=list(FORMAT_SUFFIXES), default=list(FORMAT_SUFFIXES),
                        help="what to export")
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
    height, width = check_image.shape[1:]
    check_boxes = torch.tensor([[width / 8, height / 5, width / 2, 4 * height / 5]])
    checks = {"gallery": (GalleryGraph(model), (check_image,)),
              "query": (QueryGraph(model), (check_image, check_boxes))}
    written = write_export(model, cfg, args.output, args.format, trace_image)
    for fmt, files in written.items():
        for graph, path in files.items():
            eager, inputs = checks[graph]
            with torch.no_grad():
                difference = largest_difference(eager(*inputs), load_graph(path)(*inputs))
            logger.info(f"wrote {path}; max |{fmt} - PyTorch| = {difference:.2e}")
    logger.info(f"wrote {Path(args.output) / EXPORT_MANIFEST} (the model's fingerprint, the files' SHA-256)")

if __name__ == "__main__":
    main(get_parser().parse_args())
