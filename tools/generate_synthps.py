#!/usr/bin/env python
"""Generate SynthPS, the synthetic person-search set (JPEG scenes + COCO json with person_id).

    python tools/generate_synthps.py                      # -> $DETECTRON2_DATASETS/synthps (default datasets/synthps)
    python tools/generate_synthps.py --size large --seed 3 --output /tmp/synthps --preview preview.png
    python tools/generate_synthps.py --style b            # the shifted domain -> <...>/synthps_b
"""
import argparse
import os

from ps_plugin.data.datasets.common import datasets_root
from ps_plugin.data.synthps import SIZES, STYLES, generate_synthps, render_preview


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--output",
        default=None,
        help="output folder (default: <DETECTRON2_DATASETS or datasets>/<style folder>: synthps, synthps_b)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes byte-identical files")
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument(
        "--style", choices=sorted(STYLES), default="a", help="a: the original domain; b: the shifted one (style.py)"
    )
    parser.add_argument("--workers", type=int, default=None, help="rendering processes (default: CPU count, at most 4)")
    parser.add_argument("--preview", default=None, metavar="PNG", help="also write a mosaic of scenes with boxes here")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    output = args.output or os.path.join(datasets_root(), STYLES[args.style].folder)
    summary = generate_synthps(output, seed=args.seed, size=args.size, workers=args.workers, style=args.style)
    for key, value in summary.items():
        print(f"{key:>22}: {value}")
    print(f"Generated SynthPS ({args.size}, style {args.style}, seed {args.seed}) in {summary['seconds']:.1f} s")
    if args.preview:
        print(f"Preview: {render_preview(output, args.preview)}")
    return summary


if __name__ == "__main__":
    main()
