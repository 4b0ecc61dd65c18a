#!/usr/bin/env python
"""Search a gallery folder or video for a query person; write a ranked montage PNG and a JSON of hits.

    # the query image IS the person (a crop):
    python tools/search.py --config-file configs/quick_schedules/quickstart.yaml --query crop.jpg \
        --gallery footage/ --index output/index --output out/ MODEL.WEIGHTS output/quickstart/model_final.pth
    # the person is a box in a scene image; the gallery is every 10th frame of a video:
    python tools/search.py --config-file configs/quick_schedules/quickstart.yaml --query scene.jpg --box 40 30 90 200 \
        --video cam1.avi --every 10 --index output/cam1_index --output out/

--index DIR keeps the gallery index on disk: a later run reuses it and indexes only new images/frames.
Writes <output>/search_montage.png (query crop, then the top-k hits with rank, similarity and box) and
<output>/search_hits.json ({"query": ..., "hits": [{rank, image, frame, box, score, similarity}]}).
"""
import argparse
import json
import logging
import os

from detectron2.utils.logger import setup_logger

import ps_plugin  # noqa: F401  (registers datasets, meta-architectures, heads)
from ps_plugin.config import setup_cfg
from ps_plugin.search import PersonSearcher, read_image_bgr, save_montage

logger = logging.getLogger("ps_plugin.search")


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE", help="model config yaml")
    parser.add_argument("--query", required=True, help="query image: a crop of the person, or a scene with --box")
    parser.add_argument("--box", nargs=4, type=float, metavar=("X1", "Y1", "X2", "Y2"),
                        help="the query person's box in --query (default: the whole image)")
    parser.add_argument("--gallery", nargs="+", default=[], help="gallery image files, folders or glob patterns")
    parser.add_argument("--video", help="gallery video (read with OpenCV)")
    parser.add_argument("--every", type=int, default=1, help="video: index every k-th frame")
    parser.add_argument("--index", help="index folder to reuse and extend (default: <output>/index)")
    parser.add_argument("--output", required=True, help="folder for search_montage.png and search_hits.json")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--min-score", type=float, help="minimum detection score (default: PS.EVAL.DET_THRESH)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ...")
    return parser


def query_box(image, box):
    """The query person's XYXY box: the given one, or the whole (crop) image."""
    return list(box) if box else [0.0, 0.0, float(image.shape[1]), float(image.shape[0])]


def main(args):
    setup_logger(name="ps_plugin")
    cfg = setup_cfg(args)
    index_dir = args.index or os.path.join(args.output, "index")
    searcher = PersonSearcher.from_config(cfg, index_dir=index_dir)
    if args.gallery:
        searcher.index_images(args.gallery)
    if args.video:
        searcher.index_video(args.video, every=args.every)
    searcher.save()
    image = read_image_bgr(args.query)
    box = query_box(image, args.box)
    hits = searcher.search(image, box, top_k=args.top_k, min_score=args.min_score)
    os.makedirs(args.output, exist_ok=True)
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    montage_path = os.path.join(args.output, "search_montage.png")
    save_montage(image[y1:y2, x1:x2], hits, [searcher.load_image(h) for h in hits], montage_path)
    hits_path = os.path.join(args.output, "search_hits.json")
    with open(hits_path, "w") as f:
        json.dump({"query": {"image": os.path.abspath(args.query), "box": box}, "index": os.path.abspath(index_dir),
                   "hits": [h.to_dict() for h in hits]}, f, indent=2)
    logger.info(f"{len(hits)} hits from {len(searcher.index)} indexed images: {montage_path}, {hits_path}")
    return hits


if __name__ == "__main__":
    main(get_parser().parse_args())
