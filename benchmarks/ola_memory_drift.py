#!/usr/bin/env python
"""Why OLA's instance memory drifts towards merging on the learning SynthPS (tests/learning_fixtures.py):
how each epoch's training moves the memory, split by that epoch's pseudo labels against the true
identities (never read by training), and counterfactual runs given the true identities as labels.

    python benchmarks/ola_memory_drift.py --root R --run R/ola_seed0_30      # a run with a checkpoint per epoch
    python benchmarks/ola_memory_drift.py --root R --oracle-epochs 1 4 --seed 0   # train with true labels

--run: the run's checkpoints model_<k>.pth, one per 30-iteration epoch (learning_margins.py
ola_checkpoints); the memory before epoch 0 is the memory-init features of the untrained model. Per
epoch e, with L_e the labels epoch e trained on (stored in the checkpoint at its end), the mean cosine
of the instance memory before -> after epoch e for the pairs of boxes from different images that are
"wrong" (one L_e cluster, two identities), "right" (one cluster, one identity), "missed" (one
identity, two labels), "other" (two labels, two identities); same-image pairs; after the epoch, the
nearest-neighbour identity rate (a labelled box's most similar box of another image has its
identity) and the norm of the memory's mean vector (0: spread, 1: one point).

--oracle-epochs N: trains OLA (the quick config, checkpoint per epoch) with the true identities as the
pseudo labels of epochs 0 .. N-1 (each unlabeled box its own), its own clustering after; prints
search metrics and the logged clusters per epoch. The runs go to R/ola_oracle<N>_seed<S>.
"""
import argparse
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the learning setup the tests use

from learning_fixtures import (  # noqa: E402
    OLA,
    QUERY_SET,
    learning_cfg,
    logged,
    make_learning_data,
    train,
    trained_metrics,
)
from ola_small_clustering import training_boxes  # noqa: E402

from ps_plugin.modeling.common.clustering import _relabelled, same_image_pairs  # noqa: E402
from ps_plugin.modeling.ola import OLA as OLAModel  # noqa: E402

PAIR_KINDS = ("wrong", "right", "missed", "other", "same image")


def pair_kinds(labels, identities, images, rows, cols):
    """Boolean masks [P] of PAIR_KINDS for the pairs (rows, cols)."""
    same_image = images[rows] == images[cols]
    same_label = labels[rows] == labels[cols]
    same_identity = identities[rows] == identities[cols]
    return dict(zip(PAIR_KINDS, (same_label & ~same_identity & ~same_image, same_label & same_identity,
                                 ~same_label & same_identity, ~same_label & ~same_identity & ~same_image, same_image)))


def cosine_pairs(features, rows, cols):
    """Cosine similarity [P] of the pairs (rows, cols) of features [N, D]."""
    normalised = F.normalize(features, dim=1)
    return (normalised @ normalised.t()).numpy()[rows, cols]


def nearest_identity_rate(features, identities, images, labelled):
    """Share of the labelled boxes whose most similar box of another image has their identity."""
    similarity = features @ features.t()
    similarity[torch.from_numpy(images[:, None] == images[None])] = -2.0
    return float((identities[similarity.argmax(dim=1).numpy()] == identities)[labelled].mean())


def untrained_boxes(args):
    """(memory-init features of the untrained model [N, D], true identity [N], image [N]), slot order."""
    return training_boxes(Namespace(root=args.root, weights=None, memory=False, features=args.features))


def spread(features, identities, images, labelled):
    """'NN identity | mean-vector norm' cells of the memory features [N, D]."""
    normalised = F.normalize(features, dim=1)
    return (f"{nearest_identity_rate(normalised, identities, images, labelled):.3f} | "
            f"{float(normalised.mean(dim=0).norm()):.2f}")


def drift_table(args):
    checkpoints = sorted(Path(args.run).glob("model_0*.pth"))
    before, identities, images = untrained_boxes(args)
    labelled = np.bincount(identities)[identities] > 1
    rows, cols = np.triu_indices(len(identities), 1)
    print(f"memory-init features (untrained model): NN identity | mean-vector norm = "
          f"{spread(before, identities, images, labelled)}\n")
    print(f"| epoch | clusters | pair precision | {' | '.join(PAIR_KINDS)} | NN identity | mean-vector norm |")
    print("|---:|---:|---:|" + "---|" * len(PAIR_KINDS) + "---:|---:|")
    for epoch, checkpoint in enumerate(checkpoints):
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"]
        labels = state["instance_memory.labels"].numpy()
        after = state["instance_memory.bank.features"].float()
        kinds = pair_kinds(labels, identities, images, rows, cols)
        old, new = (cosine_pairs(m, rows, cols) for m in (before, after))
        cells = [f"{old[k].mean():.2f} → {new[k].mean():.2f} ({k.sum()})" if k.any() else "— (0)" for k in kinds.values()]
        clustered = (kinds["wrong"] | kinds["right"]).sum()
        print(f"| {epoch} | {(np.bincount(labels) > 1).sum()} | {kinds['right'].sum() / max(clustered, 1):.3f} | "
              + " | ".join(cells) + f" | {spread(after, identities, images, labelled)} |")
        before = after


def oracle_runs(args):
    data = make_learning_data(args.root)
    _, identities, images = untrained_boxes(args)
    truth = _relabelled(identities)[0]
    sizes = np.bincount(truth)
    statistics = {"clusters": int((sizes > 1).sum()), "outliers": int((sizes == 1).sum()),
                  "same_image_pairs": same_image_pairs(truth, images)}
    clustering = OLAModel.pseudo_labels

    for epochs in args.oracle_epochs:
        def pseudo_labels(model, epoch, epochs=epochs):
            if epoch >= epochs:
                return clustering(model, epoch)
            return truth.copy(), dict(statistics)

        OLAModel.pseudo_labels = pseudo_labels
        cfg = learning_cfg(OLA, data, f"ola_oracle{epochs}_seed{args.seed}", args.seed)
        cfg.SOLVER.CHECKPOINT_PERIOD = 30
        metrics = trained_metrics(cfg, train(cfg))
        OLAModel.pseudo_labels = clustering
        scores = ", ".join(f"{name} {100 * metrics[key]:.1f}" for name, key in
                           (("det AP", "det/AP"), ("mAP", f"{QUERY_SET}/mAP"), ("top-1", f"{QUERY_SET}/top1"),
                            ("GT mAP", f"{QUERY_SET}/gt_mAP")))
        logs = {k: [int(v) for v in logged(cfg.OUTPUT_DIR, f"cluster/{k}")] for k in statistics}
        print(f"true labels for epochs 0-{epochs - 1}, seed {args.seed}: {scores}; per epoch {logs}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="where the learning SynthPS is (written if missing)")
    parser.add_argument("--run", help="an OLA run folder with a checkpoint per epoch")
    parser.add_argument("--features", help="an .npz to keep the untrained memory-init features in and reuse")
    parser.add_argument("--oracle-epochs", type=int, nargs="+", default=[])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.run and not args.oracle_epochs:
        parser.error("give --run and/or --oracle-epochs")
    if args.run:
        drift_table(args)
    if args.oracle_epochs:
        oracle_runs(args)


if __name__ == "__main__":
    main()
