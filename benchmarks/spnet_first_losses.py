#!/usr/bin/env python
"""SPNet's training losses over the first iterations with the loss normalisation and anchor prior of
issue 13 (fixes 1-2) against the earlier settings, on the same data, seed and config.

    python benchmarks/spnet_first_losses.py [--iters 100] [--config configs/quick_schedules/spnet_mnv2_oc_synthps.yaml]
        [--plot docs/images/spnet_first_losses.png]

"before": PS.SPNET.TRAIN.{ANCHOR,CLS}_LOSS_NORM "mean", PS.SPNET.ANCHOR_BIAS_INIT "zeros";
"after": the defaults ("num_pos", "prior_score" with pi = 0.01). Needs SynthPS under
$DETECTRON2_DATASETS (tools/generate_synthps.py). Prints each loss at a few iterations and writes
a plot of every loss per iteration (log scale).
"""
import argparse
import tempfile

import torch

from ps_plugin.config import setup_cfg
from ps_plugin.engine import PersonSearchTrainer

SETTINGS = {
    "before": ("PS.SPNET.TRAIN.ANCHOR_LOSS_NORM", "mean", "PS.SPNET.TRAIN.CLS_LOSS_NORM", "mean",
               "PS.SPNET.ANCHOR_BIAS_INIT", "zeros"),
    "after": (),
}
LOSSES = ("loss_anchor", "loss_cls_s0", "loss_reg_s0", "loss_reid", "total_loss")
REPORTED_ITERATIONS = (0, 9, 49)


def train_losses(config, opts, iterations, seed):
    """{loss name: [value at iteration 0, 1, ...]} of `iterations` training steps."""
    with tempfile.TemporaryDirectory() as output_dir:
        cfg = setup_cfg(config_file=config, opts=list(opts) + [
            "SOLVER.MAX_ITER", iterations, "SEED", seed, "OUTPUT_DIR", output_dir, "DATASETS.TEST", "()",
            "SOLVER.CHECKPOINT_PERIOD", 100000], freeze=False)
        torch.manual_seed(seed)
        trainer = PersonSearchTrainer(cfg)
        trainer.resume_or_load(resume=False)
        trainer.train()
        return {name: [v for v, _ in trainer.storage.history(name).values()] for name in LOSSES}


def plot(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(LOSSES), figsize=(4 * len(LOSSES), 3.4))
    for ax, name in zip(axes, LOSSES):
        for setting, losses in curves.items():
            ax.plot(range(1, len(losses[name]) + 1), losses[name], label=setting)
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("iteration")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/quick_schedules/spnet_mnv2_oc_synthps.yaml")
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="docs/images/spnet_first_losses.png")
    args = parser.parse_args()
    curves = {name: train_losses(args.config, opts, args.iters, args.seed) for name, opts in SETTINGS.items()}
    iterations = [i for i in REPORTED_ITERATIONS if i < args.iters] + [args.iters - 1]
    print("| setting | loss | " + " | ".join(f"it {i + 1}" for i in iterations) + " |")
    print("|---|---|" + "---:|" * len(iterations))
    for setting, losses in curves.items():
        for name in LOSSES:
            print(f"| {setting} | {name} | " + " | ".join(f"{losses[name][i]:.4g}" for i in iterations) + " |")
    plot(curves, args.plot)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
