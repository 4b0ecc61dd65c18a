#!/usr/bin/env python
"""How many true people the detections of a LAID checkpoint on the target training images keep at each
score threshold: the choice of CAIM's epsilon (PS.LAID.CAIM.SCORE_THRESH). The benchmark reads the
target set's true boxes (training never does).

    export DETECTRON2_DATASETS=/tmp/laid_ds
    python benchmarks/laid_target_scores.py --config-file configs/quick_schedules/laid_mnv2_synthps2b.yaml \
        --weights /tmp/laid_runs/laid_s1/model_0000149.pth --target-set synthps_b_train

Prints, per threshold: detections kept per image, precision and recall of the kept boxes (a kept box
covers a true person when they are each other's best match at IoU >= 0.5, the rule of the detection
evaluation), and the share of images whose only kept box would be the top one.
"""
import argparse

import torch
from detectron2.data import build_detection_test_loader

from laid_run import true_annotations
from ps_plugin.config import get_ps_cfg
from ps_plugin.data.mapper import PersonSearchDatasetMapper
from ps_plugin.engine import PersonSearchCheckpointer, PersonSearchTrainer
from ps_plugin.evaluation.pseudo_labels import true_people

THRESHOLDS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--target-set", required=True)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides, e.g. PS.LAID.DETECTION_SCORE nae")
    args = parser.parse_args()
    cfg = get_ps_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    model = PersonSearchTrainer.build_model(cfg).eval()
    PersonSearchCheckpointer(model).load(args.weights)
    records, gt_boxes, _ = true_annotations(args.target_set)
    loader = build_detection_test_loader([{**r, "annotations": []} for r in records],
                                         mapper=PersonSearchDatasetMapper(cfg, is_train=False, gt_map=False))
    detections = []
    with torch.no_grad():
        for batch in loader:
            detections += [output["instances"].to("cpu") for output in model(batch)]
    num_true = sum(len(boxes) for boxes in gt_boxes)
    print(f"{len(records)} images, {num_true} true boxes")
    print("| threshold | kept / image | precision | recall | images left with the top box only |")
    print("|---:|---:|---:|---:|---:|")
    for threshold in THRESHOLDS:
        kept = matched = top_only = 0
        for d, truth in zip(detections, gt_boxes):
            keep = (d.scores >= threshold).numpy()
            kept += int(keep.sum())
            top_only += int(keep.sum() == 0)
            matched += int((true_people(d.pred_boxes.tensor.numpy()[keep], truth) >= 0).sum())
        print(f"| {threshold} | {kept / len(records):.2f} | {matched / max(kept, 1):.3f} | {matched / num_true:.3f} "
              f"| {top_only / len(records):.2f} |")


if __name__ == "__main__":
    main()
