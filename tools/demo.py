#!/usr/bin/env python
"""Detect people in images or a video with a person-search model and write annotated images.

    python tools/demo.py --config-file configs/quick_schedules/quickstart.yaml --input "photos/*.jpg" --output out/ \
        MODEL.WEIGHTS output/quickstart/model_final.pth
    python tools/demo.py --config-file configs/quick_schedules/quickstart.yaml --video-input cam1.avi --every 25 --output out/

Images keep their file name (a clash between folders gets the folder name as a prefix); video frames
are written as <video stem>_frame<number>.jpg. Boxes scoring below --confidence-threshold are not drawn.
"""
import argparse
import logging
import os

import cv2
from detectron2.engine import DefaultPredictor
from detectron2.utils.logger import setup_logger
from tqdm import tqdm

import ps_plugin  # noqa: F401  (registers datasets, meta-architectures, heads)
from ps_plugin.config import setup_cfg
from ps_plugin.search import draw_detections, iter_video_frames, list_images, read_image_bgr

logger = logging.getLogger("ps_plugin.demo")


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE", help="model config yaml")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", nargs="+", help="image files, folders or glob patterns")
    source.add_argument("--video-input", help="a video file (read with OpenCV)")
    parser.add_argument("--every", type=int, default=1, help="video: annotate every k-th frame")
    parser.add_argument("--output", required=True, help="folder for the annotated images")
    parser.add_argument("--confidence-threshold", type=float, default=0.5, help="minimum detection score drawn")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ...")
    return parser


def annotate(predictor, image_bgr, threshold):
    """BGR image -> (annotated copy, number of people drawn)."""
    instances = predictor(image_bgr)["instances"].to("cpu")
    instances = instances[instances.scores >= threshold]
    return draw_detections(image_bgr, instances.pred_boxes.tensor.numpy(), instances.scores.numpy()), len(instances)


def image_outputs(paths, output_dir):
    """(input path, output path) pairs; names clashing between folders get their folder as a prefix."""
    names = [os.path.basename(p) for p in paths]
    clashing = {n for n in names if names.count(n) > 1}
    outputs = []
    for path, name in zip(paths, names):
        if name in clashing:
            name = f"{os.path.basename(os.path.dirname(path))}_{name}"
        outputs.append((path, os.path.join(output_dir, name)))
    return outputs


def video_frames(path, every, output_dir):
    """(BGR frame, output path) for every k-th frame of a video."""
    stem = os.path.splitext(os.path.basename(path))[0]
    for number, frame in iter_video_frames(path, every):
        yield frame, os.path.join(output_dir, f"{stem}_frame{number:06d}.jpg")


def main(args):
    setup_logger(name="ps_plugin")
    cfg = setup_cfg(args)
    predictor = DefaultPredictor(cfg)
    os.makedirs(args.output, exist_ok=True)
    if args.input:
        jobs = ((read_image_bgr(src), dst) for src, dst in image_outputs(list_images(args.input), args.output))
    else:
        jobs = video_frames(args.video_input, args.every, args.output)
    written = []
    for image, destination in tqdm(jobs, desc="Detecting", unit="image"):
        annotated, count = annotate(predictor, image, args.confidence_threshold)
        if not cv2.imwrite(destination, annotated):
            raise OSError(f"Cannot write '{destination}': check that the output folder is writable.")
        logger.info(f"{destination}: {count} people")
        written.append(destination)
    return written


if __name__ == "__main__":
    main(get_parser().parse_args())
