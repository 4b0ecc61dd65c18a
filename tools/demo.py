#!/usr/bin/env python
"""Detect people in images or a video with a person-search model and write annotated images.

    python tools/demo.py --config-file configs/quick_schedules/quickstart.yaml --input "photos/*.jpg" --output out/ \
        MODEL.WEIGHTS output/quickstart/model_final.pth
    python tools/demo.py --config-file configs/quick_schedules/quickstart.yaml --video-input cam1.avi --every 25 --output out/

Each image is written under --output at its path relative to the inputs' common folder (a/x/img.jpg
and b/x/img.jpg stay apart); an output that would replace an input is refused, and images already
under --output are not inputs. Video frames are written as <video stem>_frame<number>.jpg. Boxes
scoring below --confidence-threshold are not drawn. Unreadable images and frames are skipped with a
warning and listed at the end (--strict stops at the first). Every output is written whole or not at
all, so running the same command again after an interruption continues where it stopped: outputs
of the same model and settings (demo_settings.json) are kept, other outputs are drawn again.
"""
import argparse
import json
import logging
import os

import cv2
from detectron2.utils.logger import setup_logger
from tqdm import tqdm

import ps_plugin  # noqa: F401  (registers datasets, meta-architectures, heads)
from ps_plugin.config import setup_cfg
from ps_plugin.search import (
    PersonSearchPredictor,
    draw_detections,
    iter_video_frames,
    list_images,
    model_fingerprint,
    read_image_bgr,
    require_weights,
)
from ps_plugin.utils.files import atomic_write

logger = logging.getLogger("ps_plugin.demo")

SETTINGS = "demo_settings.json"


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE", help="model config yaml")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", nargs="+", help="image files, folders or glob patterns")
    source.add_argument("--video-input", help="a video file (read with OpenCV)")
    parser.add_argument("--every", type=int, default=1, help="video: annotate every k-th frame")
    parser.add_argument("--output", required=True, help="folder for the annotated images")
    parser.add_argument("--confidence-threshold", type=float, default=0.5, help="minimum detection score drawn")
    parser.add_argument("--strict", action="store_true", help="stop at the first unreadable image or frame")
    parser.add_argument("--allow-untrained", action="store_true",
                        help="run without MODEL.WEIGHTS (random heads: for testing the pipeline only)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ...")
    return parser


def annotate(predictor, image_bgr, threshold):
    """BGR image -> (annotated copy, number of people drawn)."""
    instances = predictor(image_bgr)["instances"].to("cpu")
    instances = instances[instances.scores >= threshold]
    return draw_detections(image_bgr, instances.pred_boxes.tensor.numpy(), instances.scores.numpy()), len(instances)


def _inside(path, folder):
    return os.path.commonpath([path, folder]) == folder


def image_outputs(paths, output_dir):
    """(input path, output path) pairs: each output at its input's path relative to the inputs' common
    folder, under `output_dir`. Inputs inside `output_dir` (earlier outputs) are left out, so no output
    is ever an input; when that leaves none, ValueError."""
    output_dir = os.path.abspath(output_dir)
    inputs = [os.path.abspath(p) for p in paths if not _inside(os.path.abspath(p), output_dir)]
    if not inputs:
        raise ValueError(f"--output '{output_dir}' holds every input image: writing there would overwrite input "
                         "images or mix outputs with them. Give an output folder outside the inputs.")
    if len(inputs) < len(paths):
        logger.warning(f"Left out {len(paths) - len(inputs)} image(s) under --output '{output_dir}': outputs are "
                       "not inputs.")
    root = os.path.commonpath([os.path.dirname(p) for p in inputs])
    return [(p, os.path.join(output_dir, os.path.relpath(p, root))) for p in inputs]


def video_frames(path, every, output_dir, on_error):
    """(BGR frame, output path) for every k-th frame of a video."""
    stem = os.path.splitext(os.path.basename(path))[0]
    for number, frame in iter_video_frames(path, every, on_error=on_error):
        yield frame, os.path.join(output_dir, f"{stem}_frame{number:06d}.jpg")


def image_jobs(pairs, on_error):
    """(BGR image, output path) of each readable input image."""
    for source, destination in pairs:
        try:
            yield read_image_bgr(source), destination
        except OSError as error:
            on_error(source, error)


def reuse_outputs(output_dir, settings):
    """True when `output_dir` holds outputs drawn with `settings` (then they are kept); records them."""
    path = os.path.join(output_dir, SETTINGS)
    same = False
    if os.path.isfile(path):
        with open(path) as f:
            same = json.load(f) == settings
        if not same:
            logger.info(f"{path}: another model or threshold drew the images in '{output_dir}': drawing them again.")
    with atomic_write(path) as temporary, open(temporary, "w") as f:
        json.dump(settings, f, indent=1)
    return same


def write_image(path, image):
    """Write `image` to `path` whole or not at all (atomic_write)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_write(path) as temporary:
        if not cv2.imwrite(temporary, image):
            raise OSError(f"Cannot write '{path}': check that the output folder is writable and the extension "
                          "is an image format OpenCV writes.")


def main(args):
    setup_logger(name="ps_plugin")
    cfg = setup_cfg(args)
    require_weights(cfg, args.allow_untrained)
    os.makedirs(args.output, exist_ok=True)
    settings = {"fingerprint": model_fingerprint(cfg), "confidence_threshold": args.confidence_threshold}
    keep_existing = reuse_outputs(args.output, settings)
    predictor = PersonSearchPredictor(cfg)
    skipped = []

    def skip(source, error):
        if args.strict:
            raise error
        logger.warning(f"Skipped '{source}': {error}")
        skipped.append(f"{source}: {error}")

    if args.input:
        pairs = image_outputs(list_images(args.input), args.output)
        todo = [(s, d) for s, d in pairs if not (keep_existing and os.path.isfile(d))]
        if len(todo) < len(pairs):
            logger.info(f"Kept {len(pairs) - len(todo)} image(s) drawn by an earlier run with the same settings.")
        jobs = image_jobs(todo, skip)
    else:
        jobs = video_frames(args.video_input, args.every, args.output, lambda n, e: skip(f"frame {n}", e))
    written = []
    for image, destination in tqdm(jobs, desc="Detecting", unit="image"):
        if keep_existing and os.path.isfile(destination):
            continue
        annotated, count = annotate(predictor, image, args.confidence_threshold)
        write_image(destination, annotated)
        logger.info(f"{destination}: {count} people")
        written.append(destination)
    if skipped:
        logger.warning(f"Skipped {len(skipped)} unreadable image(s) / frame(s):\n  " + "\n  ".join(skipped))
    return written


if __name__ == "__main__":
    main(get_parser().parse_args())
