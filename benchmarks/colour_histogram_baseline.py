#!/usr/bin/env python
"""Colour-histogram nearest neighbour on ground-truth boxes: how far colour alone gets.

    python benchmarks/colour_histogram_baseline.py --gallery synthps_gallery --query synthps_query
"""
import argparse

from detectron2.data import DatasetCatalog

import ps_plugin  # noqa: F401  (registers datasets)
from ps_plugin.evaluation.colour_histogram import colour_histogram_search


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", default="synthps_gallery")
    parser.add_argument("--query", default="synthps_query")
    args = parser.parse_args()
    evaluation = colour_histogram_search(DatasetCatalog.get(args.gallery), DatasetCatalog.get(args.query))
    summary = evaluation.summary()
    print(f"| dataset | queries | mAP | top-1 | top-5 | top-10 |\n|---|---|---|---|---|---|")
    print(f"| {args.query} | {len(evaluation.ap)} | {summary['mAP']:.3f} | {summary['top1']:.3f} "
          f"| {summary['top5']:.3f} | {summary['top10']:.3f} |")


if __name__ == "__main__":
    main()
