#!/usr/bin/env python
"""OLA's clustering on a small training set: which k1 / eps / min_samples / CAC / reliability settings
recover the true identities of the learning SynthPS (120 scenes, 80 identities, 479 boxes, 3-6
appearances per identity; tests/learning_fixtures.py), before any training.

    python benchmarks/ola_small_clustering.py [--root DIR] [--weights CKPT [--memory]]
        [--features NPZ] [--k1 30 20 10 6] [--k2 6] [--eps 0.5 0.55 0.6 0.65 0.7] [--min-samples 2 4] [--reliability 0 0.02]

Features: the instance embeddings the memory-init hook writes into M_I before iteration 0 (the model
of the OLA learning setup: ImageNet MobileNetV2 and random heads, or --weights), i.e. what OLA
clusters at epoch 0; with --memory, the instance memory stored in the checkpoint --weights (what the
run clustered last). Every setting runs plain DBSCAN and CAC (k2 6, beta 0.2, edges 0.5, as the
code, unless --k2); --reliability d > 0 adds SpCL's criterion over eps - d, eps, eps + d. Against the true
identities (never read by training): ARI, clusters, outliers, largest cluster, pairwise precision /
recall of "same cluster", same-image pairs. Prints a markdown table, best ARI first.
"""
import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the learning setup the tests use

from bench_ola_clustering import pair_scores  # noqa: E402
from detectron2.data import build_detection_test_loader  # noqa: E402
from learning_fixtures import OLA, learning_cfg, make_learning_data  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from ps_plugin.data.identities import load_training_records  # noqa: E402
from ps_plugin.data.mapper import PersonSearchDatasetMapper  # noqa: E402
from ps_plugin.engine import PersonSearchCheckpointer, PersonSearchTrainer  # noqa: E402
from ps_plugin.engine.hooks import MemoryInitHook  # noqa: E402
from ps_plugin.modeling.common.clustering import cluster_features  # noqa: E402


def training_boxes(args):
    """(instance features [N, D], true identity [N], image [N]) in slot order; --features: a saved
    copy (written on first use)."""
    if args.features and Path(args.features).exists():
        saved = np.load(args.features)
        return torch.from_numpy(saved["features"]), saved["identities"], saved["images"]
    data = make_learning_data(args.root or tempfile.mkdtemp(prefix="ola_small_clustering_"))
    cfg = learning_cfg(OLA, data, "clustering_probe")
    records = load_training_records(cfg)[0]
    torch.manual_seed(cfg.SEED)
    model = PersonSearchTrainer.build_model(cfg)
    if args.weights:
        PersonSearchCheckpointer(model).load(args.weights)
    model.index_training_boxes(records)
    identities = np.array([a["person_id"] for r in records for a in r["annotations"]])
    images = np.array([index for index, r in enumerate(records) for _ in r["annotations"]])
    unlabeled = identities < 0  # SynthPS's unlabeled passers-by: each a person of their own
    identities[unlabeled] = identities.max() + 1 + np.arange(unlabeled.sum())
    if args.memory:
        return save(args, model.instance_memory.features.cpu(), identities, images)
    loader = build_detection_test_loader(records, mapper=PersonSearchDatasetMapper(cfg, is_train=False))
    slots, features = MemoryInitHook._extract(model, loader)
    instance = torch.empty_like(features["instance"])
    instance[slots] = features["instance"]
    return save(args, instance, identities, images)


def save(args, features, identities, images):
    if args.features:
        np.savez(args.features, features=features.numpy(), identities=identities, images=images)
    return features, identities, images


def evaluate(features, identities, images, **options):
    start = time.perf_counter()
    result = cluster_features(features, images, **options)
    seconds = time.perf_counter() - start
    precision, recall, violations = pair_scores(result.labels, identities, images)
    sizes = np.bincount(result.labels)
    return {"ari": adjusted_rand_score(identities, result.labels), "clusters": result.num_clusters,
            "outliers": result.num_outliers, "largest": int(sizes.max()), "precision": precision,
            "recall": recall, "same_image": violations, "seconds": seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="where the learning SynthPS is written (default: a temporary folder)")
    parser.add_argument("--weights", help="an OLA checkpoint of the learning setup (default: the untrained model)")
    parser.add_argument("--memory", action="store_true", help="cluster the checkpoint's instance memory")
    parser.add_argument("--features", help="an .npz to keep the extracted features in and reuse")
    parser.add_argument("--k1", type=int, nargs="+", default=[30, 20, 10, 6])
    parser.add_argument("--k2", type=int, nargs="+", default=[6])
    parser.add_argument("--eps", type=float, nargs="+", default=[0.5, 0.55, 0.6, 0.65, 0.7])
    parser.add_argument("--min-samples", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--reliability", type=float, nargs="+", default=[0.0, 0.02])
    args = parser.parse_args()
    if args.memory and not args.weights:
        parser.error("--memory reads the instance memory of --weights")
    features, identities, images = training_boxes(args)
    counts = np.bincount(np.unique(identities, return_inverse=True)[1])
    print(f"{len(identities)} boxes, {len(np.unique(images))} images, {len(counts)} identities "
          f"(appearances {counts.min()}-{counts.max()}, mean {counts.mean():.1f}); "
          f"features: {'memory of ' if args.memory else ''}{args.weights or 'untrained model'}\n")
    rows = []
    for k1, k2, eps, min_samples, context, delta in itertools.product(
            args.k1, args.k2, args.eps, args.min_samples, (False, True), args.reliability):
        options = dict(k1=k1, k2=k2, eps=eps, min_samples=min_samples, context=context, reliability_delta=delta)
        rows.append((options, evaluate(features, identities, images, **options)))
    rows.sort(key=lambda row: -row[1]["ari"])
    print("| k1 | k2 | eps | min_samples | CAC | reliability | ARI | clusters | outliers | largest | pair precision | pair recall | same-image pairs | s |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for o, r in rows:
        print(f"| {o['k1']} | {o['k2']} | {o['eps']:.2f} | {o['min_samples']} | {'yes' if o['context'] else 'no'} | "
              f"{o['reliability_delta']:.2f} | {r['ari']:.3f} | {r['clusters']} | {r['outliers']} | {r['largest']} | "
              f"{r['precision']:.3f} | {r['recall']:.3f} | {r['same_image']} | {r['seconds']:.2f} |")


if __name__ == "__main__":
    main()
