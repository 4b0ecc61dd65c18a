"""What benchmarks/laid_pseudo_label_quality.py and laid_caim_vs_greedy.py read from a LAID run directory
(tools/train_net.py's OUTPUT_DIR): its config.yaml, its checkpoints model_*.pth (one per iteration:
model_final repeats the last periodic one), the stage-1 state TargetPseudoLabelHook saved in each, and
the target set's true annotations (the benchmarks may read them; training never does).
"""
import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

HOOK = "TargetPseudoLabelHook"


def run_arguments(description):
    """The arguments both LAID benchmarks take; sets DETECTRON2_DATASETS from --datasets-root."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, type=Path, help="the LAID run's OUTPUT_DIR")
    parser.add_argument("--datasets-root", help="DETECTRON2_DATASETS for the target set (default: the environment's)")
    parser.add_argument("--json", type=Path, help="where to write the rows (default: in --output-dir)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides of the run's config.yaml (e.g. "
                        "PS.LAID.DETECTION_SCORE nae for a run made before that key existed)")
    return parser


def apply_datasets_root(args):
    if args.datasets_root:
        os.environ["DETECTRON2_DATASETS"] = args.datasets_root


def run_config(run_dir, opts=()):
    """The run's config.yaml, then the KEY VALUE overrides `opts`, as a ps_plugin config (not frozen)."""
    from ps_plugin.config import get_ps_cfg

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: --output-dir must be a LAID run's OUTPUT_DIR (train_net.py writes it).")
    cfg = get_ps_cfg()
    cfg.merge_from_file(str(path))
    cfg.merge_from_list(list(opts))
    return cfg


def target_set(cfg):
    """The DATASETS.TRAIN entry tagged "target" in PS.DATA.TRAIN_DOMAINS."""
    from ps_plugin.data.identities import TARGET, training_domains

    names = [name for name, domain in training_domains(cfg).items() if domain == TARGET]
    if len(names) != 1:
        raise ValueError(f"The run's config tags {names} as target in PS.DATA.TRAIN_DOMAINS; a LAID run has exactly one.")
    return names[0]


def checkpoints(run_dir):
    """(iteration, path, checkpoint) of each model_*.pth in iteration order, one per iteration."""
    paths = sorted(Path(run_dir).glob("model_*.pth"))
    if not paths:
        raise FileNotFoundError(f"No model_*.pth in {run_dir}: train with SOLVER.CHECKPOINT_PERIOD one target epoch.")
    seen = {}
    for path in paths:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        seen.setdefault(int(checkpoint["iteration"]), (path, checkpoint))
    return [(iteration, *seen[iteration]) for iteration in sorted(seen)]


def stage_one_state(checkpoint, path):
    """The TargetPseudoLabelHook state saved in a trainer checkpoint: epoch, caches, annotations."""
    try:
        return checkpoint["trainer"]["hooks"][HOOK]
    except KeyError:
        raise KeyError(f"{path} holds no trainer['hooks']['{HOOK}'] state: it is not a checkpoint of a LAID training run.")


def true_annotations(name, num_images=None):
    """(records, gt boxes [M, 4] XYXY_ABS per image, gt person ids [M] per image) of the registered set
    `name`, in its record order (the order of the hook's per-image state, which covers `num_images`)."""
    from detectron2.data import DatasetCatalog
    from detectron2.structures import BoxMode

    records = DatasetCatalog.get(name)
    if num_images is not None and len(records) != num_images:
        raise ValueError(f"'{name}' has {len(records)} images, the run's stage-1 state {num_images}: "
                         "give the run's target set (--target-set) and its DETECTRON2_DATASETS (--datasets-root).")
    boxes = [np.array([BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in r["annotations"]],
                      dtype=np.float64).reshape(-1, 4) for r in records]
    pids = [np.array([a.get("person_id", -1) for a in r["annotations"]], dtype=np.int64) for r in records]
    return records, boxes, pids


def markdown_table(columns, rows):
    """rows: lists of cells (already formatted) under `columns`."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1))
    print(f"rows written to {path}")
