#!/usr/bin/env python
"""Time of the batched log-domain Sinkhorn of OLA's prototype matching.

    python benchmarks/bench_sinkhorn.py [--images 4] [--gts 20] [--proposals 512] [--iterations 50]
        [--repeats 50] [--threads 1]

One problem per image: GT suppliers (k = 3 units each) plus the background supplier, every proposal
demanding 1, random costs in [0, 4] (the range of eq. 3 with alpha 1), float32, epsilon 0.1. Prints
a markdown table of the median and 90th-percentile wall time of `sinkhorn` + `decode_plan` over
--repeats calls after 3 warm-up calls, and the largest row-marginal error of the plan.
"""
import argparse
import time

import numpy as np
import torch

from ps_plugin.modeling.common.assignment import decode_plan, sinkhorn


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--gts", type=int, default=20)
    parser.add_argument("--proposals", type=int, default=512)
    parser.add_argument("--iterations", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    cost = 4 * torch.rand(args.images, args.gts + 1, args.proposals, generator=generator)
    supply = torch.full((args.images, args.gts + 1), 3.0)
    supply[:, 0] = args.proposals - 3.0 * args.gts
    demand = torch.ones(args.images, args.proposals)
    print(f"{args.images} images x ({args.gts} GT + background) x {args.proposals} proposals, float32, "
          f"{args.threads} thread(s)\n")
    print("| iterations | median (ms) | p90 (ms) | max row-marginal error |")
    print("|---|---|---|---|")
    for iterations in args.iterations:
        times = []
        for repeat in range(args.repeats + 3):
            start = time.perf_counter()
            plan = sinkhorn(cost, supply, demand, 0.1, iterations)
            decode_plan(plan)
            if repeat >= 3:
                times.append(1000 * (time.perf_counter() - start))
        error = (plan.sum(dim=2) - supply).abs().max().item()
        print(f"| {iterations} | {np.median(times):.2f} | {np.percentile(times, 90):.2f} | {error:.1e} |")


if __name__ == "__main__":
    main()
