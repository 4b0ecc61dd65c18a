#!/usr/bin/env python
"""OLA's clustering at real training-set scale: plain DBSCAN against context-aware clustering (CAC).

    python benchmarks/bench_ola_clustering.py [--scale prw|cuhk] [--seeds 0 1] [--noise 0.8]
        [--look-alike 0.3] [--offset 0.9]

prw: the real PRW training annotations (../shared/data/prw/train_pid.json: 18,048 boxes in 5,704
images, real co-occurrence; every unlabeled box is a person of its own). cuhk: CUHK-SYSU's training
size (55,272 boxes, 11,206 images) with a simulated layout (5,532 identities seen 2-3 times each, the
other boxes people seen once, boxes spread uniformly over images).

Features (256-d) are simulated: identity prototype + Gaussian noise (--noise, per unit vector). For a
fraction --look-alike of the identity pairs that share an image, the second prototype is a near copy
of the first, at distance --offset per unit vector (look-alike people standing together: the case
CAC is for). Each method runs in a fresh
subprocess (wall time and peak resident memory of the whole process: ru_maxrss), with OLA's defaults
(Jaccard k1 30, k2 6; DBSCAN eps --eps, min_samples --min-samples; CAC beta 0.2, edges at cosine
distance 0.5). Reported against the true identities: ARI, clusters, outliers, pairwise precision /
recall of "same cluster", and same-image violations (pairs of boxes of one image in one cluster).
Prints a markdown table.
"""
import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PRW_TRAIN = REPO.parent / "shared" / "data" / "prw" / "train_pid.json"


def prw_layout():
    """(identity [N], image [N]) of the PRW training boxes; unlabeled boxes get identities of their own."""
    data = json.loads(PRW_TRAIN.read_text())
    pids = np.array([a["person_id"] for a in data["annotations"]])
    images = np.array([a["image_id"] for a in data["annotations"]])
    unlabeled = pids < 0
    pids[unlabeled] = pids.max() + 1 + np.arange(unlabeled.sum())
    return pids, images


def cuhk_layout(rng, num_boxes=55272, num_images=11206, num_ids=5532):
    labeled = np.repeat(np.arange(num_ids), rng.integers(2, 4, size=num_ids))
    pids = np.concatenate([labeled, num_ids + np.arange(num_boxes - len(labeled))])
    return pids, rng.integers(0, num_images, size=num_boxes)


def simulated_features(pids, images, rng, noise, look_alike, offset=0.6, dim=256):
    _, pids = np.unique(pids, return_inverse=True)
    prototypes = rng.standard_normal((pids.max() + 1, dim))
    prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
    people_of = {}
    for image, pid in zip(images, pids):
        people_of.setdefault(image, set()).add(pid)
    pairs = set()
    for ids in people_of.values():
        ids = sorted(ids)
        pairs.update((a, b) for i, a in enumerate(ids) for b in ids[i + 1:])
    pairs = sorted(pairs)
    chosen = rng.random(len(pairs)) < look_alike
    for a, b in np.array(pairs)[chosen] if chosen.any() else []:
        near = prototypes[a] + offset * rng.standard_normal(dim) / np.sqrt(dim)
        prototypes[b] = near / np.linalg.norm(near)
    features = prototypes[pids] + noise * rng.standard_normal((len(pids), dim)) / np.sqrt(dim)
    return (features / np.linalg.norm(features, axis=1, keepdims=True)).astype(np.float32), pids


def pair_scores(labels, truth, images):
    """Pairwise precision / recall of "same cluster" against "same identity" and same-image violations."""
    from sklearn.metrics.cluster import pair_confusion_matrix

    from ps_plugin.modeling.common.clustering import same_image_pairs

    (_, false_positive), (false_negative, true_positive) = pair_confusion_matrix(truth, labels) // 2
    violations = same_image_pairs(labels, images)
    return true_positive / max(true_positive + false_positive, 1), true_positive / max(true_positive + false_negative, 1), violations


def run_one(args):
    """Child process: one method on one seed -> JSON line."""
    sys.path.insert(0, str(REPO))
    import torch
    from sklearn.metrics import adjusted_rand_score

    from ps_plugin.modeling.common.clustering import cluster_features

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    pids, images = prw_layout() if args.scale == "prw" else cuhk_layout(rng)
    features, truth = simulated_features(pids, images, rng, args.noise, args.look_alike, args.offset)
    start = time.perf_counter()
    result = cluster_features(torch.from_numpy(features), images, args.eps, args.min_samples, context=args.only == "cac")
    seconds = time.perf_counter() - start
    precision, recall, violations = pair_scores(result.labels, truth, images)
    print(json.dumps({
        "method": args.only, "seed": args.seed, "boxes": len(pids), "images": len(np.unique(images)),
        "identities": int(truth.max() + 1), "seconds": seconds,
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "ari": adjusted_rand_score(truth, result.labels), "clusters": result.num_clusters,
        "outliers": result.num_outliers, "precision": precision, "recall": recall, "violations": violations,
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=("prw", "cuhk"), default="prw")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--noise", type=float, default=0.8)
    parser.add_argument("--look-alike", type=float, default=0.3)
    parser.add_argument("--offset", type=float, default=0.9)
    parser.add_argument("--eps", type=float, default=0.68)
    parser.add_argument("--min-samples", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=("dbscan", "cac"), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        return run_one(args)
    rows = []
    for seed in args.seeds:
        for method in ("dbscan", "cac"):
            command = [sys.executable, __file__, "--only", method, "--seed", str(seed)] + [
                f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                if k in ("scale", "noise", "look_alike", "offset", "eps", "min_samples", "threads")]
            rows.append(json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1]))
    first = rows[0]
    print(f"{args.scale}: {first['boxes']} boxes, {first['images']} images, {first['identities']} identities; "
          f"noise {args.noise}, look-alike {args.look_alike} at offset {args.offset}, eps {args.eps}, min_samples {args.min_samples}\n")
    print("| method | seed | time (s) | peak RSS (GB) | ARI | clusters | outliers | pair precision | pair recall | same-image violations |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['seed']} | {r['seconds']:.1f} | {r['peak_gb']:.2f} | {r['ari']:.3f} | {r['clusters']} | "
              f"{r['outliers']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['violations']} |")


if __name__ == "__main__":
    main()
