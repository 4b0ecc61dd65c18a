#!/usr/bin/env python
"""LAID's pseudo labels per stage-1 epoch against the target set's true annotations (issue 16's "pseudo-label
quality per epoch"; LAID Fig. 5).

    python benchmarks/laid_pseudo_label_quality.py --output-dir RUN_DIR [--target-set synthps_b_train]
        [--datasets-root DIR] [--json PATH]

Reads every checkpoint model_*.pth of the run (torch.load, weights_only), takes the pseudo annotations
TargetPseudoLabelHook saved (per target image: boxes and person_id = proxy row) and scores each stage-1
epoch once (ps_plugin.evaluation.pseudo_labels.pseudo_label_quality): pseudo boxes, those covering a true
person (IoU >= 0.5, mutual best match) as precision and recall, pseudo identities split into clusters
(>= 2 boxes) and outliers (1 box), the true identities among the covered boxes, ARI and NMI of pseudo
label against true identity over the covered boxes, and Fig. 5's counts: clustered instances against
the true boxes with identity, outliers against the true boxes without. Prints a markdown table and
writes the rows as JSON (default RUN_DIR/laid_pseudo_label_quality.json).
"""
import numpy as np

import ps_plugin  # noqa: F401  (registers the datasets)
from laid_run import (
    apply_datasets_root,
    checkpoints,
    markdown_table,
    run_arguments,
    run_config,
    stage_one_state,
    target_set,
    true_annotations,
    write_json,
)
from ps_plugin.evaluation.pseudo_labels import ImagePseudoLabels, pseudo_label_quality

COLUMNS = ("epoch", "checkpoint", "pseudo boxes", "covering a person", "precision", "recall", "clusters", "outliers",
           "clustered instances / GT with id", "outliers / GT without id", "true ids covered / GT ids", "ARI", "NMI")


def epoch_images(annotations, gt_boxes, gt_pids):
    """ImagePseudoLabels per target image from the hook's saved annotations and the true boxes."""
    return [
        ImagePseudoLabels(np.array([a["bbox"] for a in image], dtype=np.float64).reshape(-1, 4),
                          np.array([a["person_id"] for a in image], dtype=np.int64), boxes, pids)
        for image, boxes, pids in zip(annotations, gt_boxes, gt_pids)
    ]


def quality_rows(run_dir, target):
    """One row per stage-1 epoch found in the run's checkpoints (the first checkpoint holding it)."""
    rows, truth = [], None
    for iteration, path, checkpoint in checkpoints(run_dir):
        state = stage_one_state(checkpoint, path)
        epoch = int(state["epoch"])
        if epoch < 0 or any(r["epoch"] == epoch for r in rows):
            continue
        if truth is None:
            truth = true_annotations(target, len(state["annotations"]))[1:]
        rows.append({"epoch": epoch, "checkpoint": path.name, "iteration": iteration,
                     **pseudo_label_quality(epoch_images(state["annotations"], *truth))})
    return rows


def table(rows):
    return markdown_table(COLUMNS, [
        (r["epoch"], r["checkpoint"], r["pseudo_boxes"], r["covered"], f"{r['precision']:.3f}", f"{r['recall']:.3f}",
         r["clusters"], r["outliers"], f"{r['clustered_instances']} / {r['gt_with_identity']}",
         f"{r['outliers']} / {r['gt_unlabelled']}", f"{r['true_identities']} / {r['gt_identities']}",
         f"{r['ari']:.3f}", f"{r['nmi']:.3f}")
        for r in rows
    ])


def main(argv=None):
    parser = run_arguments(__doc__)
    parser.add_argument("--target-set", help="the registered target set (default: the run's DATASETS.TRAIN target)")
    args = parser.parse_args(argv)
    apply_datasets_root(args)
    target = args.target_set or target_set(run_config(args.output_dir, args.opts))
    rows = quality_rows(args.output_dir, target)
    if not rows:
        print(f"No stage-1 epoch in the checkpoints of {args.output_dir} yet (PS.LAID.TARGET_REID_START).")
    print(f"Pseudo labels of {args.output_dir} against the true annotations of {target}:\n")
    print(table(rows))
    write_json(args.json or args.output_dir / "laid_pseudo_label_quality.json", rows)
    return rows


if __name__ == "__main__":
    main()
