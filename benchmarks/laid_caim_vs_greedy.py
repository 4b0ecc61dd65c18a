#!/usr/bin/env python
"""CAIM's one-to-one (Jonker-Volgenant) matching against DSCA's greedy rule, with and without the loose
threshold, on the same cached detections: identity switches and merges of the tracks across epochs,
counted against the target set's true people (issue 16's "CAIM against greedy matching"; LAID Table 2).

    python benchmarks/laid_caim_vs_greedy.py --output-dir RUN_DIR [--datasets-root DIR] [--cache NPZ] [--json PATH]
        [KEY VALUE ...]   # overrides of the run's config.yaml

1. Detections: each checkpoint of the run (one per iteration; CHECKPOINT_PERIOD one target epoch gives
   the model at the end of each epoch) detects on every target training image once, by stage 1's own
   inference (TargetPseudoLabelHook.detect_targets: eval mode, test-time resize, original-image
   boxes, scores, embeddings). Cached in an .npz (default RUN_DIR/laid_target_detections.npz); a
   checkpoint already there is not run again.
2. Replay: the per-image track caches are rebuilt from empty, pass after pass in checkpoint order, by
   `CostAwareInstanceMatching` with the run's PS.LAID.CAIM keys and MATCHING jv / greedy, LOOSE True /
   False. After each pass every track (its smoothed box) is matched to a true person (IoU >= 0.5,
   mutual best match, ps_plugin.evaluation.pseudo_labels.true_people) and each continued track is
   compared with the track it continues: a switch when both cover a person and not the same one, a
   merge when one previous track is continued by tracks covering two or more people (greedy only).
Prints a markdown table (tracks and tracks covering a person per pass; per transition the contested
tracks, previous tracks with two or more candidates above the IoU gate, the only ones where JV and
greedy can differ, the continued tracks, switches and merges; switch and merge totals) and writes the rows as JSON (default RUN_DIR/laid_caim_vs_greedy.json). It also
checks that the cached detections are stage 1's own: the run's CAIM setting replayed on the passes that
fed its stage 1 must give the tracks saved in its last checkpoint (each pass then being the detections
stage 1 made at the iteration after the checkpoint).
"""
from pathlib import Path

import numpy as np
import torch

import ps_plugin  # noqa: F401  (registers the datasets and models)
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
from ps_plugin.evaluation.pseudo_labels import identity_changes, true_people
from ps_plugin.modeling.laid.caim import CostAwareInstanceMatching, TrackCache, box_iou
from ps_plugin.modeling.laid.pseudo_labels import ImageDetections

# (row name, PS.LAID.CAIM.MATCHING, PS.LAID.CAIM.LOOSE)
SETTINGS = (("jv + loose", "jv", True), ("jv strict", "jv", False), ("greedy + loose", "greedy", True),
            ("greedy strict", "greedy", False))


# ---- detections, cached ----------------------------------------------------------------------------
def detect(cfg, path, hook):
    """Every target image's ImageDetections under the checkpoint at `path` (stage 1's inference)."""
    from ps_plugin.engine import PersonSearchTrainer
    from ps_plugin.engine.checkpointer import PersonSearchCheckpointer

    cfg = cfg.clone()
    cfg.PS.BACKBONE.WEIGHTS = ""  # every weight comes from the checkpoint
    model = PersonSearchTrainer.build_model(cfg)
    PersonSearchCheckpointer(model).load(str(path))
    return hook.detect_targets(model)


def pack(iteration, detections):
    """ImageDetections per image -> npz arrays of one pass, keyed by iteration."""
    return {f"boxes_{iteration}": torch.cat([d.boxes for d in detections]).numpy(),
            f"scores_{iteration}": torch.cat([d.scores for d in detections]).numpy(),
            f"features_{iteration}": torch.cat([d.features for d in detections]).numpy(),
            f"counts_{iteration}": np.array([len(d.boxes) for d in detections], dtype=np.int64)}


def unpack(arrays, iteration):
    """The npz arrays of one pass -> ImageDetections per image."""
    offsets = np.cumsum(np.concatenate([[0], arrays[f"counts_{iteration}"]]))
    parts = [torch.as_tensor(arrays[f"{key}_{iteration}"]) for key in ("boxes", "scores", "features")]
    return [ImageDetections(*(p[a:b] for p in parts)) for a, b in zip(offsets[:-1], offsets[1:])]


def target_hook(cfg):
    """The run's TargetPseudoLabelHook over its training records: stage 1's inference and epochs. With the
    loose threshold on, so that its detections keep every candidate either LOOSE setting replays."""
    from ps_plugin.data.identities import load_training_records
    from ps_plugin.engine.domain_adaptation import TargetPseudoLabelHook

    cfg = cfg.clone()
    cfg.PS.LAID.CAIM.LOOSE = True
    return TargetPseudoLabelHook(cfg, load_training_records(cfg)[0])


def cached_detections(run, cfg, hook, cache_path, file_names):
    """[(iteration, ImageDetections per target image)] for every checkpoint of `run` (laid_run.checkpoints),
    running only those not in the cache."""
    arrays = dict(np.load(cache_path)) if cache_path.is_file() else {"file_names": np.array(file_names)}
    if arrays["file_names"].tolist() != list(file_names):
        raise ValueError(f"{cache_path} holds detections of other images than the target set: delete it or give --cache.")
    passes = []
    for iteration, path, _ in run:
        if f"counts_{iteration}" not in arrays:
            arrays.update(pack(iteration, detect(cfg, path, hook)))
            np.savez(cache_path, **arrays)
            print(f"detected with {path.name}, cached in {cache_path}")
        passes.append((iteration, unpack(arrays, iteration)))
    return passes


# ---- replay ------------------------------------------------------------------------------------------
def contested(caim, history, detection):
    """History tracks with two or more candidate detections above the IoU gate: the only tracks where JV
    and greedy matching can choose differently (elsewhere every valid pair is a detection's only option
    or its maximum-IoU one)."""
    candidates = detection.boxes[detection.scores >= caim.candidate_thresh]
    if len(history) == 0 or len(candidates) == 0:
        return 0
    return int(((box_iou(history.boxes, candidates) > caim.iou_gate).sum(dim=1) >= 2).sum())


def caim_passes(caim, passes):
    """CAIM from empty caches over the passes (each a list of ImageDetections per image); yields, pass
    after pass, per image (the history rows its continued tracks come from [P], the new TrackCache, the
    number of `contested` history tracks). update() puts the continued tracks first, in match()'s order."""
    caches = None
    for detections in passes:
        caches = caches or [TrackCache.empty(d.features.shape[1]) for d in detections]
        step = [(caim.match(c, d.boxes, d.scores)[0], caim.update(c, d.boxes, d.features, d.scores)[0], contested(caim, c, d))
                for c, d in zip(caches, detections)]
        caches = [cache for _, cache, _ in step]
        yield step


def replay(caim, passes, gt_boxes):
    """One dict per pass of `caim_passes`: tracks, covering (tracks covering a true person), contested
    (previous tracks JV and greedy may match differently), continued (tracks continuing one of the previous
    pass), switches and merges (identity_changes), each summed over images."""
    people = [np.zeros(0, dtype=np.int64) for _ in gt_boxes]
    rows = []
    for step in caim_passes(caim, passes):
        totals = dict.fromkeys(("tracks", "covering", "contested", "continued", "switches", "merges"), 0)
        for m, ((previous, cache, disputed), truth) in enumerate(zip(step, gt_boxes)):
            now = true_people(cache.boxes.numpy(), truth)
            switches, merges = identity_changes(people[m], previous.numpy(), now[: len(previous)])
            people[m] = now
            for key, value in (("tracks", len(now)), ("covering", int((now >= 0).sum())), ("contested", disputed),
                               ("continued", len(previous)), ("switches", switches), ("merges", merges)):
                totals[key] += value
        rows.append(totals)
    return rows


def stage_one_passes(hook, passes):
    """The passes stage 1 detected with: the checkpoint at iteration p holds the model of iteration p + 1,
    which stage 1 uses when p + 1 starts a target epoch >= PS.LAID.TARGET_REID_START."""
    def epoch(iteration):
        return iteration * hook.target_per_batch // len(hook.target_index)

    return [(p, d) for p, d in passes if epoch(p + 1) > epoch(p) and epoch(p + 1) >= hook.start_epoch]


def reproduces_run(hook, caim, passes, run):
    """The run's own CAIM (`caim`, its PS.LAID.CAIM keys) over the cached passes that fed its stage 1 before
    its last checkpoint, against the tracks saved there -> (passes replayed, identical track ids and boxes)."""
    iteration, path, checkpoint = run[-1]
    fed = [d for p, d in stage_one_passes(hook, passes) if p < iteration]
    if not fed:
        return 0, False
    *_, step = caim_passes(caim, fed)
    saved = stage_one_state(checkpoint, path)["caches"]
    return len(fed), all(torch.equal(c.track_ids, s["track_ids"]) and torch.allclose(c.boxes, s["boxes"])
                         for (_, c, _), s in zip(step, saved))


def caim_of(cfg, matching, loose):
    cfg = cfg.clone()
    cfg.PS.LAID.CAIM.MATCHING = matching
    cfg.PS.LAID.CAIM.LOOSE = loose
    return CostAwareInstanceMatching(cfg)


def comparison_rows(cfg, passes, gt_boxes):
    """One row per SETTINGS entry: per-pass counts and the switch and merge totals."""
    iterations = [iteration for iteration, _ in passes]
    rows = []
    for name, matching, loose in SETTINGS:
        per_pass = replay(caim_of(cfg, matching, loose), [d for _, d in passes], gt_boxes)
        rows.append({"setting": name, "matching": matching, "loose": loose, "iterations": iterations,
                     "per_pass": per_pass, "switches": sum(p["switches"] for p in per_pass),
                     "merges": sum(p["merges"] for p in per_pass)})
    return rows


def table(rows):
    def joined(row, key, first=0):
        return " / ".join(str(p[key]) for p in row["per_pass"][first:])

    columns = ("setting", "tracks per pass", "covering a person", "contested", "continued", "switches per transition",
               "switches", "merges per transition", "merges")
    return markdown_table(columns, [
        (r["setting"], joined(r, "tracks"), joined(r, "covering"), joined(r, "contested", 1), joined(r, "continued", 1),
         joined(r, "switches", 1), r["switches"], joined(r, "merges", 1), r["merges"])
        for r in rows
    ])


def main(argv=None):
    parser = run_arguments(__doc__)
    parser.add_argument("--cache", type=Path, help="the detections .npz (default: RUN_DIR/laid_target_detections.npz)")
    args = parser.parse_args(argv)
    apply_datasets_root(args)
    cfg = run_config(args.output_dir, args.opts)
    target = target_set(cfg)
    records, gt_boxes, _ = true_annotations(target)
    cache = args.cache or args.output_dir / "laid_target_detections.npz"
    run, hook = checkpoints(args.output_dir), target_hook(cfg)
    passes = cached_detections(run, cfg, hook, cache, [r["file_name"] for r in records])
    replayed, identical = reproduces_run(hook, CostAwareInstanceMatching(cfg), passes, run)
    rows = comparison_rows(cfg, passes, gt_boxes)
    print(f"CAIM on the detections of {len(passes)} checkpoints (iterations {[i for i, _ in passes]}) of "
          f"{args.output_dir}, against the true people of {target}. The run's own CAIM setting replayed on the "
          f"{replayed} passes that fed its stage 1 {'gives' if identical else 'does NOT give'} the tracks saved in "
          f"{run[-1][1].name}.\n")
    print(table(rows))
    result = {"iterations": [i for i, _ in passes], "stage_one_passes_replayed": replayed, "reproduces_run": identical,
              "rows": rows}
    write_json(args.json or args.output_dir / "laid_caim_vs_greedy.json", result)
    return result


if __name__ == "__main__":
    main()
