#!/usr/bin/env python
"""Search a gallery folder or video for a query person; write a ranked montage PNG and a JSON of hits.

    # the query image IS the person (a crop):
    python tools/search.py --config-file configs/quick_schedules/quickstart.yaml --query crop.jpg \
        --gallery footage/ --index output/index --output out/ MODEL.WEIGHTS output/quickstart/model_final.pth
    # the person is a box in a scene image; the gallery is every 10th frame of a video:
    python tools/search.py --config-file configs/quick_schedules/quickstart.yaml --query scene.jpg --box 40 30 90 200 \
        --video cam1.avi --every 10 --index output/cam1_index --output out/
    # the same with the model exported by tools/export_model.py, run by ONNX Runtime (or gallery.ts):
    python tools/search.py --config-file configs/quick_schedules/quickstart.yaml --query crop.jpg \
        --gallery footage/ --exported output/export/gallery.onnx --index output/index_onnx --output out/

--index DIR keeps the gallery index on disk, saved every --save-every images and when the run stops
(done, error, Ctrl-C or SIGTERM): a later run reuses it and indexes only new images/frames, so an
interrupted run is resumed by running the same command again. Unreadable images and video frames are
skipped with a warning and listed at the end (--strict stops at the first instead).
Writes <output>/search_montage.png (the query and top-k hits, each person cropped and enlarged above
its whole image) and <output>/search_hits.json ({"query", "index", "hits": [{rank, image, frame, box,
score, similarity}], "skipped": [{source, frame, error}]}).
"""
import argparse
import json
import logging
import os
import signal

from detectron2.utils.logger import setup_logger

import ps_plugin  # noqa: F401  (registers datasets, meta-architectures, heads)
from ps_plugin.config import setup_cfg
from ps_plugin.search import PersonSearcher, read_image_bgr, save_montage

logger = logging.getLogger("ps_plugin.search")


def positive_int(text):
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not an integer >= 1")
    return value


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE", help="model config yaml")
    parser.add_argument("--query", required=True, help="query image: a crop of the person, or a scene with --box")
    parser.add_argument("--box", nargs=4, type=float, metavar=("X1", "Y1", "X2", "Y2"),
                        help="the query person's box in --query (default: the whole image)")
    parser.add_argument("--gallery", nargs="+", default=[], help="gallery image files, folders or glob patterns")
    parser.add_argument("--video", help="gallery video (read with OpenCV)")
    parser.add_argument("--every", type=positive_int, default=1, help="video: index every k-th frame")
    parser.add_argument("--index", help="index folder to reuse and extend (default: <output>/index)")
    parser.add_argument("--output", required=True, help="folder for search_montage.png and search_hits.json")
    parser.add_argument("--top-k", type=positive_int, default=10, help="number of hits shown (>= 1)")
    parser.add_argument("--min-score", type=float, help="minimum detection score (default: PS.EVAL.DET_THRESH)")
    parser.add_argument("--save-every", type=positive_int, default=50, help="save the index every N new images")
    parser.add_argument("--strict", action="store_true", help="stop at the first unreadable image or frame")
    parser.add_argument("--allow-untrained", action="store_true",
                        help="run without MODEL.WEIGHTS (random heads: for testing the pipeline only)")
    parser.add_argument("--exported", metavar="FILE",
                        help="index and query with this exported model (gallery.onnx or gallery.ts of "
                             "tools/export_model.py; the config and overrides it was exported with)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ...")
    return parser


def query_box(image, box):
    """The query person's XYXY box: the given one, or the whole (crop) image."""
    return list(box) if box else [0.0, 0.0, float(image.shape[1]), float(image.shape[0])]


def main(args):
    setup_logger(name="ps_plugin")
    cfg = setup_cfg(args)
    index_dir = args.index or os.path.join(args.output, "index")
    searcher = PersonSearcher.from_config(cfg, index_dir=index_dir, allow_untrained=args.allow_untrained,
                                          exported=args.exported, save_every=args.save_every)
    image = read_image_bgr(args.query)
    box = query_box(image, args.box)
    query = searcher.embed_query(image, box)  # a bad query fails before any indexing
    if args.gallery:
        searcher.index_images(args.gallery, strict=args.strict)
    if args.video:
        searcher.index_video(args.video, every=args.every, strict=args.strict)
    hits = searcher.search_embedding(query, top_k=args.top_k, min_score=args.min_score)
    os.makedirs(args.output, exist_ok=True)
    montage_path = os.path.join(args.output, "search_montage.png")
    save_montage(image, box, hits, [searcher.load_image(h) for h in hits], montage_path)
    hits_path = os.path.join(args.output, "search_hits.json")
    with open(hits_path, "w") as f:
        json.dump({"query": {"image": os.path.abspath(args.query), "box": box}, "index": os.path.abspath(index_dir),
                   "hits": [h.to_dict() for h in hits], "skipped": searcher.skipped}, f, indent=2)
    if searcher.skipped:
        listed = "\n  ".join(f"{s['source']}{'' if s['frame'] is None else ' frame %d' % s['frame']}: {s['error']}"
                             for s in searcher.skipped)
        logger.warning(f"Skipped {len(searcher.skipped)} unreadable image(s) / frame(s):\n  {listed}")
    logger.info(f"{len(hits)} hits from {len(searcher.index)} indexed images: {montage_path}, {hits_path}")
    return hits


def raise_keyboard_interrupt(signum, frame):
    """SIGTERM handler: stop like Ctrl-C, so the index indexed so far is saved."""
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    main(get_parser().parse_args())
