#!/usr/bin/env python
"""Colour-histogram nearest neighbour on ground-truth boxes: how far colour alone gets.

    python benchmarks/colour_histogram_baseline.py --gallery synthps_gallery --query synthps_query
    python benchmarks/colour_histogram_baseline.py --learning-root DIR

--learning-root writes the learning SynthPS of the learning tests under DIR (tests/learning_fixtures.py)
and searches its query set in its gallery: the sets benchmarks/learning_margins.py evaluates on.
"""
import argparse
import sys
from pathlib import Path

from detectron2.data import DatasetCatalog

import ps_plugin  # noqa: F401  (registers datasets)
from ps_plugin.evaluation.colour_histogram import colour_histogram_search


def learning_sets(root):
    """Write the learning SynthPS under `root` -> the names of its (gallery, query) sets."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the learning setup the tests use
    from learning_fixtures import PREFIX, QUERY_SET, make_learning_synthps

    make_learning_synthps(Path(root) / "synthps")
    return f"{PREFIX}_gallery", QUERY_SET


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", default="synthps_gallery")
    parser.add_argument("--query", default="synthps_query")
    parser.add_argument("--learning-root",
                        help="search the learning SynthPS, written here (overrides --gallery / --query)")
    args = parser.parse_args()
    if args.learning_root:
        args.gallery, args.query = learning_sets(args.learning_root)
    evaluation = colour_histogram_search(DatasetCatalog.get(args.gallery), DatasetCatalog.get(args.query))
    summary = evaluation.summary()
    print(f"| dataset | queries | mAP | top-1 | top-5 | top-10 |\n|---|---|---|---|---|---|")
    print(f"| {args.query} | {len(evaluation.ap)} | {summary['mAP']:.3f} | {summary['top1']:.3f} "
          f"| {summary['top5']:.3f} | {summary['top10']:.3f} |")


if __name__ == "__main__":
    main()
