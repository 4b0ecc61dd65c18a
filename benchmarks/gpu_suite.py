#!/usr/bin/env python
"""Everything that needs a GPU, in one call: inference speed, training steps and the evaluator of
every full-size config, with random weights, written as JSON and a markdown table.

    python benchmarks/gpu_suite.py --budget-s 480 --out $OUT          # one GPU, CUDA + AMP + channels-last
    python benchmarks/gpu_suite.py --smoke --out /tmp/suite           # the same code paths on CPU, tiny sizes

Tasks, in this order (each one's failure is recorded and the suite goes on; a task that would not
fit in what is left of --budget-s is recorded as skipped):
  1. inference: each CASES entry built from its config with random weights (bench_spnet_speed's
     build_random_model: every detection score passes, so each model does its maximum work), on
     the device, channels-last, under autocast float16 (--no-amp: float32); one warm-up image,
     then --images random images of the paper's test size one at a time (gallery mode: detection +
     re-id embedding of every detection). Reports ms/image median and p90, images/s (1 / median),
     peak GPU memory, and the issue's FPS target where there is one.
  2. training: --train-iters iterations of each config with a `train` flag (AMP when CUDA) at its
     training size on SynthPS `large` (generated once into --work-dir, with as many training
     scenes as the iterations read), through PersonSearchTrainer (the path tools/train_net.py
     takes with --num-gpus 1). Reports s/iteration (median of the iterations after the first)
     and peak memory; the first iteration is reported apart (cudnn autotuning, allocator warm-up).
  3. evaluator: evaluate_search (numpy, CPU) on simulated results of CUHK-SYSU TestG100 and of the
     PRW test json when --data holds them (cuhk_sysu/TestG100.mat, prw/test_pid.json), and always
     on the generated SynthPS gallery; with and without CBGM.

Outputs: <out>/gpu_suite.json (rewritten after every task, so a run cut short keeps what it
measured) and <out>/gpu_suite.md. --smoke: CPU, float32, 96 x 128 px images (128 px crops), 1
timed image, 1 training iteration at batch 2 on a 16-scene SynthPS, few proposals, RoIs and
anchors (SMOKE_OPTS), the generated SynthPS alone in the evaluator: seconds per config, for the
test that keeps this script working while no GPU is around.
"""
import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from bench_eval_protocols import prw_queries
from bench_spnet_speed import CONFIGS, build_random_model, image_seconds, random_model_cfg, size_label

from ps_plugin.config import get_ps_cfg
from ps_plugin.data.datasets.cuhk_sysu_protocol import cuhk_sysu_search_records
from ps_plugin.data.datasets.person_search_json import load_person_search_json
from ps_plugin.data.datasets.synthps import register_all_synthps
from ps_plugin.data.synthps import SIZES, generate_synthps
from ps_plugin.engine import PersonSearchTrainer
from ps_plugin.evaluation import GalleryResults, GalleryTruth, evaluate_search, queries_for_protocol
from ps_plugin.evaluation.simulate import ResultSimulator, simulate_results

CUHK_SIZE, PRW_SIZE, PSDIFF_SIZE = (900, 1500), (844, 1500), (800, 1333)  # paper test sizes (H, W)
SMOKE_SIZE = (96, 128)
# --smoke: small images and crops (SPNet trains on PS.INPUT.CROP_SIZE crops), fewer proposals,
# sampled RoIs and anchors (a C4 head runs res5 on every RoI, SPNet-L's later stages a ConvNeXt
# stage on every sampled anchor).
SMOKE_OPTS = (
    "MODEL.RPN.POST_NMS_TOPK_TRAIN", 32, "MODEL.RPN.POST_NMS_TOPK_TEST", 32, "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 16,
    "PS.PSDIFF.NUM_PROPOSALS_TRAIN", 16, "PS.PSDIFF.NUM_PROPOSALS_TEST", 16, "PS.SPNET.TRAIN.NUM_SAMPLED_ANCHORS", 32,
    "PS.INPUT.CROP_SIZE", 128,
)
SYNTHPS_PREFIX = "gpu_suite_synthps"


@dataclass
class Case:
    """One full-size config: `sizes` to time at, KEY VALUE `opts`, FPS `targets` {size: fps}, and
    whether to run the training steps (one per config, not per test-time setting)."""

    name: str
    config: str
    sizes: tuple
    opts: tuple = ()
    targets: dict = field(default_factory=dict)
    train: bool = True


# Every full-size config. A new method's full config: add a line here (and to docs/BENCHMARKS.md).
CASES = [
    Case("baseline R50-C4 OIM", "baseline_r50_cuhk.yaml", (CUHK_SIZE,)),
    Case("SPNet-S", "spnet_s.yaml", (CUHK_SIZE, PRW_SIZE)),
    Case("SPNet-L", "spnet_l.yaml", (CUHK_SIZE, PRW_SIZE)),
    Case("SPNet-L-R50", "spnet_l_r50.yaml", (CUHK_SIZE, PRW_SIZE), targets={PRW_SIZE: 40}),
    Case("PSDiff R50, 1 step", "psdiff_r50.yaml", (PSDIFF_SIZE,), ("PS.PSDIFF.SAMPLE_STEPS", 1), {PSDIFF_SIZE: 60}),
    Case("PSDiff R50, 8 steps", "psdiff_r50.yaml", (PSDIFF_SIZE,), ("PS.PSDIFF.SAMPLE_STEPS", 8), {PSDIFF_SIZE: 30},
         train=False),
    Case("PSDiff Swin-B", "psdiff_swin_b.yaml", (PSDIFF_SIZE,)),
]
# Seconds a task needs at least (build + warm-up + timing on a GPU); what does not fit is skipped.
TASK_SECONDS = {"inference": 20, "training": 45, "evaluator": 15}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/gpu_suite", help="folder of gpu_suite.json and gpu_suite.md")
    parser.add_argument("--budget-s", type=float, default=480, help="wall-clock budget of the whole suite")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, 1 image / iteration per config")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --smoke)")
    parser.add_argument("--no-amp", action="store_true", help="float32 inference and training")
    parser.add_argument("--images", type=int, default=50, help="timed images per config and size")
    parser.add_argument("--train-iters", type=int, default=20)
    parser.add_argument("--train-batch", type=int, default=0, help="images per iteration (0: the config's)")
    parser.add_argument("--only", nargs="+", default=None, help="case names to run (default: all)")
    parser.add_argument("--skip", nargs="+", default=(), choices=sorted(TASK_SECONDS), help="task kinds to leave out")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"),
                        help="folder holding cuhk_sysu/TestG100.mat and prw/test_pid.json (optional)")
    parser.add_argument("--work-dir", default=None, help="SynthPS and training output (default: a temporary folder)")
    args = parser.parse_args(argv)
    args.device = args.device or ("cpu" if args.smoke else "cuda")
    args.amp = args.device.startswith("cuda") and not args.no_amp
    args.opts = SMOKE_OPTS if args.smoke else ()
    if args.smoke:
        args.images, args.train_iters, args.train_batch = 1, 1, 2
    return args


class Suite:
    """Runs tasks inside the budget, recording each as a row {"task", "case", ..., "status"}."""

    def __init__(self, args):
        self.args, self.rows, self.start = args, [], time.perf_counter()
        os.makedirs(args.out, exist_ok=True)

    def left(self):
        return self.args.budget_s - (time.perf_counter() - self.start)

    def run(self, task, case, function, **labels):
        row = {"task": task, "case": case, **labels}
        if task in self.args.skip:
            return
        if self.left() < TASK_SECONDS[task]:
            row.update(status="skipped", error=f"{self.left():.0f} s of the budget left")
        else:
            started = time.perf_counter()
            try:
                row.update(function(), status="ok")
            except Exception as error:  # one failing config must not stop the others
                row.update(status="error", error=f"{type(error).__name__}: {error}".splitlines()[0][:300])
                traceback.print_exc()
            row["wall_s"] = round(time.perf_counter() - started, 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        self.write()

    def write(self):
        header = {"device": device_name(self.args.device), "amp": self.args.amp, "smoke": self.args.smoke,
                  "torch": torch.__version__, "budget_s": self.args.budget_s,
                  "elapsed_s": round(time.perf_counter() - self.start, 1)}
        with open(os.path.join(self.args.out, "gpu_suite.json"), "w") as f:
            json.dump({"environment": header, "rows": self.rows}, f, indent=2)
        with open(os.path.join(self.args.out, "gpu_suite.md"), "w") as f:
            f.write(markdown(header, self.rows))


def device_name(device):
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def reset_peak(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device):
    """Peak allocated GPU memory since reset_peak, GiB (None on CPU)."""
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None


def inference(args, case, size):
    """Time gallery inference of `case` at `size` (H, W)."""
    model = build_random_model(case.config, args.device, opts=case.opts + args.opts)
    model = model.to(memory_format=torch.channels_last)
    reset_peak(args.device)
    seconds, detections = image_seconds(model, size, args.images, args.device, amp=args.amp)
    median = statistics.median(seconds)
    target = case.targets.get(size)
    return {
        "ms_median": round(1000 * median, 2), "ms_p90": round(1000 * float(np.percentile(seconds, 90)), 2),
        "images_per_s": round(1 / median, 2), "target_fps": target,
        "meets_target": None if target is None else 1 / median >= target,
        "detections": round(statistics.mean(detections), 1), "peak_gib": peak_gib(args.device),
    }


def make_synthps(args, work_dir):
    """SynthPS `large` (its identities, cameras and gallery size), with as many training scenes as the
    training steps read, registered as SYNTHPS_PREFIX_{train,gallery,query}."""
    root = os.path.join(work_dir, "synthps")
    batch = args.train_batch or 32
    size = SIZES["large"]
    if args.smoke:
        size = size.scaled(num_train_images=16, num_gallery_images=8, gallery_size=4, image_sizes=((160, 120),))
    else:
        size = size.scaled(num_train_images=min(size.num_train_images, max(200, batch * (args.train_iters + 1))))
    if not os.path.exists(os.path.join(root, "train.json")):
        generate_synthps(root, seed=0, size=size, workers=min(8, os.cpu_count() or 1))
    if f"{SYNTHPS_PREFIX}_train" not in DatasetCatalog.list():
        register_all_synthps(root=root, prefix=SYNTHPS_PREFIX)
    return root


def random_teacher(work_dir):
    """(config file, weights) of a randomly initialised baseline R50 saved once: PSDiff trains only
    with a teacher checkpoint, and its values do not change the step's cost."""
    config, weights = os.path.join(work_dir, "random_teacher.yaml"), os.path.join(work_dir, "random_teacher.pth")
    if not os.path.exists(weights):
        cfg = random_model_cfg("baseline_r50_cuhk.yaml", "cpu", zero_thresholds=False)
        with open(config, "w") as f:
            f.write(cfg.dump())
        torch.manual_seed(0)
        torch.save({"model": build_model(cfg).state_dict()}, weights)
    return config, weights


def train_cfg(args, case, work_dir):
    cfg = get_ps_cfg()
    cfg.merge_from_file(str(CONFIGS / case.config))
    cfg.merge_from_list(list(case.opts + args.opts))
    cfg.MODEL.DEVICE = args.device
    cfg.MODEL.WEIGHTS = cfg.PS.BACKBONE.WEIGHTS = ""
    cfg.PS.REID.NUM_PIDS = 0  # from the SynthPS metadata
    cfg.DATASETS.TRAIN, cfg.DATASETS.TEST = (f"{SYNTHPS_PREFIX}_train",), ()
    cfg.TEST.EVAL_PERIOD = 0
    cfg.SOLVER.AMP.ENABLED = args.amp
    cfg.SOLVER.MAX_ITER = args.train_iters
    cfg.OUTPUT_DIR = os.path.join(work_dir, "train", case.config)
    if args.train_batch:
        cfg.SOLVER.IMS_PER_BATCH = args.train_batch
    if cfg.MODEL.META_ARCHITECTURE == "PSDiff":
        cfg.PS.PSDIFF.TEACHER.CONFIG_FILE, cfg.PS.PSDIFF.TEACHER.WEIGHTS = random_teacher(work_dir)
    if args.smoke:
        cfg.DATALOADER.NUM_WORKERS = 0
        cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = (SMOKE_SIZE[0],), SMOKE_SIZE[1]
    return cfg


def training(args, case, work_dir):
    """`train_iters` optimizer steps of `case` on the generated SynthPS; s/iteration and peak memory."""
    make_synthps(args, work_dir)
    cfg = train_cfg(args, case, work_dir)
    torch.manual_seed(0)
    trainer = PersonSearchTrainer(cfg)
    reset_peak(args.device)
    seconds = []
    with EventStorage(0) as storage:
        for iteration in range(args.train_iters):
            storage.iter = trainer.iter = iteration
            start = time.perf_counter()
            trainer.run_step()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
    steady = seconds[1:] or seconds
    return {
        "iterations": len(seconds), "batch": cfg.SOLVER.IMS_PER_BATCH,
        "train_size": f"{cfg.INPUT.MIN_SIZE_TRAIN}/{cfg.INPUT.MAX_SIZE_TRAIN}", "s_first_iter": round(seconds[0], 3),
        "s_per_iter": round(statistics.median(steady), 3), "peak_gib": peak_gib(args.device),
    }


def evaluator(query_records, gallery_records, false_positives, cbgm_k):
    """Seconds of evaluate_search (packing included) on simulated results, without and with CBGM."""
    content = simulate_results(ResultSimulator(dim=256, noise=3.0, false_positives=false_positives, seed=0),
                               query_records, gallery_records)
    queries = queries_for_protocol(content["queries"], query_records)
    truth = GalleryTruth.from_records(gallery_records) if gallery_records else None
    row = {"queries": len(queries), "gallery_images": len(content["gallery"])}
    for cbgm in (False, True):
        start = time.perf_counter()
        summary = evaluate_search(GalleryResults.from_dict(content["gallery"]), queries, truth, cbgm=cbgm,
                                  cbgm_k1=cbgm_k[0], cbgm_k2=cbgm_k[1]).summary()
        key = "cbgm" if cbgm else "plain"
        row.update({f"s_{key}": round(time.perf_counter() - start, 3), f"mAP_{key}": round(100 * summary["mAP"], 2)})
    return row


def evaluator_sets(args, work_dir):
    """(name, thunk giving (query records, gallery records or ()), false positives, (k1, k2)) per set present."""
    testg100 = os.path.join(args.data, "cuhk_sysu", "TestG100.mat")
    prw_json = os.path.join(args.data, "prw", "test_pid.json")
    sets = []
    if os.path.exists(testg100) and not args.smoke:
        sets.append(("CUHK-SYSU TestG100", lambda: (cuhk_sysu_search_records(testg100), ()), 4, (10, 3)))
    if os.path.exists(prw_json) and not args.smoke:
        def prw():
            gallery = load_person_search_json(prw_json, image_root="")
            return prw_queries(gallery), gallery
        sets.append(("PRW-size (test json)", prw, 2, (30, 4)))

    def synthps():
        make_synthps(args, work_dir)
        return DatasetCatalog.get(f"{SYNTHPS_PREFIX}_query"), DatasetCatalog.get(f"{SYNTHPS_PREFIX}_gallery")
    sets.append(("SynthPS (generated)", synthps, 2, (10, 3)))
    return sets


def markdown(header, rows):
    lines = [f"Device: {header['device']}; AMP {header['amp']}; torch {header['torch']}; smoke {header['smoke']}; "
             f"{header['elapsed_s']} s of a {header['budget_s']} s budget.", ""]
    tables = {
        "inference": ("case", "size", "ms_median", "ms_p90", "images_per_s", "target_fps", "meets_target", "detections",
                      "peak_gib"),
        "training": ("case", "batch", "train_size", "iterations", "s_first_iter", "s_per_iter", "peak_gib"),
        "evaluator": ("case", "queries", "gallery_images", "s_plain", "s_cbgm", "mAP_plain", "mAP_cbgm"),
    }
    for task, columns in tables.items():
        selected = [r for r in rows if r["task"] == task]
        if not selected:
            continue
        lines += [f"### {task}", "", "| " + " | ".join(columns + ("status",)) + " |", "|" + "---|" * (len(columns) + 1)]
        for r in selected:
            status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('error', '')}".replace("|", "/")
            lines.append("| " + " | ".join(str(r.get(c, "")) for c in columns) + f" | {status} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("No CUDA device: run on a GPU machine, or use --smoke (CPU, tiny sizes).")
    torch.backends.cudnn.benchmark = args.device.startswith("cuda")
    cases = [c for c in CASES if args.only is None or c.name in args.only]
    suite = Suite(args)
    with tempfile.TemporaryDirectory() as scratch:
        work_dir = args.work_dir or scratch
        for case in cases:
            for size in case.sizes:
                size = SMOKE_SIZE if args.smoke else size
                suite.run("inference", case.name, lambda: inference(args, case, size), size=size_label(size))
                if args.smoke:
                    break
        for case in (c for c in cases if c.train):
            suite.run("training", case.name, lambda: training(args, case, work_dir))
        for name, records, false_positives, cbgm_k in evaluator_sets(args, work_dir):
            suite.run("evaluator", name, lambda: evaluator(*records(), false_positives, cbgm_k))
    with open(os.path.join(args.out, "gpu_suite.md")) as f:
        print(f.read())
    return suite.rows


if __name__ == "__main__":
    main()
