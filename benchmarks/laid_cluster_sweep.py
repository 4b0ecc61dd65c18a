#!/usr/bin/env python
"""The clustering of LAID's stage 1 (k-reciprocal Jaccard + DBSCAN) on the ground-truth boxes of a target
training set, embedded by a checkpoint, against the true identities (ola_small_clustering's measures):
how k1 and eps should scale with a small target set. The benchmark reads the true identities (training never does).

    export DETECTRON2_DATASETS=/tmp/laid_ds
    python benchmarks/laid_cluster_sweep.py --config-file configs/quick_schedules/laid_mnv2_synthps2b.yaml \
        --weights /tmp/laid_runs/laid_s1/model_final.pth --target-set synthps_b_train
"""
import argparse

import numpy as np
import torch
from detectron2.data import DatasetCatalog, build_detection_test_loader
from ola_small_clustering import evaluate

from ps_plugin.config import get_ps_cfg
from ps_plugin.data.mapper import PersonSearchDatasetMapper
from ps_plugin.engine import PersonSearchCheckpointer, PersonSearchTrainer
from ps_plugin.structures import GT_EMBEDDINGS

K1_VALUES = (30, 20, 10, 6)
EPS_VALUES = (0.5, 0.6, 0.7)
MIN_SAMPLES = 2


def gt_embeddings(cfg, weights, target_set):
    """(features [N, D], true identity [N], image index [N]) of every annotated box of the set; a person
    without identity is a person of their own (as in ola_small_clustering and evaluation.pseudo_labels)."""
    model = PersonSearchTrainer.build_model(cfg).eval()
    PersonSearchCheckpointer(model).load(weights)
    loader = build_detection_test_loader(DatasetCatalog.get(target_set),
                                         mapper=PersonSearchDatasetMapper(cfg, is_train=False, gt_map=True))
    features, person_ids, images = [], [], []
    with torch.no_grad():
        for batch in loader:
            for x, output in zip(batch, model(batch)):
                features.append(output[GT_EMBEDDINGS].cpu())
                person_ids += [a["person_id"] for a in x["annotations"]]
                images += [x["image_id"]] * len(x["annotations"])
    _, image_index = np.unique(np.array(images), return_inverse=True)
    identities = np.array(person_ids)
    unlabeled = identities < 0
    identities[unlabeled] = identities.max() + 1 + np.arange(unlabeled.sum())
    return torch.cat(features), identities, image_index


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--target-set", required=True)
    args = parser.parse_args()
    cfg = get_ps_cfg()
    cfg.merge_from_file(args.config_file)
    features, identities, images = gt_embeddings(cfg, args.weights, args.target_set)
    print(f"{len(features)} boxes, {len(np.unique(identities))} people, min_samples {MIN_SAMPLES}")
    print("| k1 | k2 | eps | clusters | outliers | largest cluster | ARI | pair precision | pair recall |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k1 in K1_VALUES:
        k2 = 6 if k1 >= 12 else 2
        for eps in EPS_VALUES:
            r = evaluate(features, identities, images, eps=eps, min_samples=MIN_SAMPLES, k1=k1, k2=k2, context=False)
            print(f"| {k1} | {k2} | {eps} | {r['clusters']} | {r['outliers']} | {r['largest']} | {r['ari']:.3f} "
                  f"| {r['precision']:.3f} | {r['recall']:.3f} |")

if __name__ == "__main__":
    main()
