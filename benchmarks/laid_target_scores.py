#!/usr/bin/env python
"""How many true people the detections of a LAID checkpoint on the target training images keep at each
score threshold: the choice of CAIM's epsilon (PS.LAID.CAIM.SCORE_THRESH). The benchmark reads the
target set's true boxes (training never does).

    export DETECTRON2_DATASETS=/tmp/laid_ds
    python benchmarks/laid_target_scores.py --config-file configs/quick_schedules/laid_mnv2_synthps2b.yaml \
        --weights /tmp/laid_runs/laid_s1/model_0000149.pth --target-set synthps_b_train

Prints, per threshold: detections kept per image, precision and recall of the kept boxes at IoU >= 0.5
(greedy one-to-one by score), and the share of images whose only kept box would be the top one.
"""
import argparse

import torch
from detectron2.data import DatasetCatalog, build_detection_test_loader
from detectron2.structures import Boxes, BoxMode, pairwise_iou

from ps_plugin.config import get_ps_cfg
from ps_plugin.data.mapper import PersonSearchDatasetMapper
from ps_plugin.engine import PersonSearchCheckpointer, PersonSearchTrainer

THRESHOLDS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


def true_boxes(record):
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in record["annotations"]]
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def matches(boxes, scores, truth, iou=0.5):
    """Number of kept boxes matched one-to-one (by decreasing score) to a true box at IoU >= iou."""
    if len(boxes) == 0 or len(truth) == 0:
        return 0
    overlaps = pairwise_iou(Boxes(boxes[scores.argsort(descending=True)]), Boxes(truth))
    taken, matched = torch.zeros(len(truth), dtype=torch.bool), 0
    for row in overlaps:
        row = row.masked_fill(taken, -1)
        if row.max() >= iou:
            taken[row.argmax()] = True
            matched += 1
    return matched


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
    records = DatasetCatalog.get(args.target_set)
    loader = build_detection_test_loader([{**r, "annotations": []} for r in records],
                                         mapper=PersonSearchDatasetMapper(cfg, is_train=False, gt_map=False))
    detections = []
    with torch.no_grad():
        for batch in loader:
            detections += [output["instances"].to("cpu") for output in model(batch)]
    num_true = sum(len(r["annotations"]) for r in records)
    print(f"{len(records)} images, {num_true} true boxes")
    print("| threshold | kept / image | precision | recall | images left with the top box only |")
    print("|---:|---:|---:|---:|---:|")
    for threshold in THRESHOLDS:
        kept = matched = top_only = 0
        for record, d in zip(records, detections):
            keep = d.scores >= threshold
            kept += int(keep.sum())
            top_only += int(keep.sum() == 0)
            matched += matches(d.pred_boxes.tensor[keep], d.scores[keep], true_boxes(record))
        print(f"| {threshold} | {kept / len(records):.2f} | {matched / max(kept, 1):.3f} | {matched / num_true:.3f} "
              f"| {top_only / len(records):.2f} |")


if __name__ == "__main__":
    main()
