"""Tiny end-to-end training setups for the trainer, resume and DDP tests (CPU, seconds each).

`tiny_synthps(root)` writes a few small SynthPS scenes; `tiny_train_cfg(root, prefix, output_dir)`
is configs/quick_schedules/quickstart.yaml shrunk to a MobileNetV2-0.5 on 64-96 px images. `run_training(cfg)`
trains and returns the final state (`final_state`); `ddp_main` is the same, launched per process.
"""
import os

import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling.proposal_generator import rpn
from detectron2.modeling.roi_heads import roi_heads
from detectron2.utils import comm

from common import QUICK_SCHEDULES, tiny_cfg
from ps_plugin.data.datasets.synthps import register_all_synthps
from ps_plugin.data.synthps import generate_synthps
from ps_plugin.data.synthps.config import SynthPSSize
from ps_plugin.engine import PersonSearchTrainer

TINY_SYNTHPS = SynthPSSize(
    num_train_images=8, num_gallery_images=4, gallery_size=3, num_cameras=2, persons_per_image=(2, 3),
    train_appearances=(2, 3), test_appearances=(2, 2), person_height=(40, 90), image_sizes=((160, 120),),
)


def tiny_synthps(root, seed=0):
    """Write the tiny SynthPS under `root` (8 train scenes of 160 x 120 px, 2-3 persons each)."""
    generate_synthps(str(root), seed=seed, size=TINY_SYNTHPS, workers=1)
    return root


def register_tiny(root, prefix):
    """Register `<prefix>_{train,gallery,query}` for the SynthPS at `root` (once per process)."""
    if f"{prefix}_train" not in DatasetCatalog.list():
        register_all_synthps(root=str(root), prefix=prefix)


def tiny_train_cfg(root, prefix, output_dir, **solver):
    """configs/quick_schedules/quickstart.yaml, shrunk: MobileNetV2-0.5 (random init), 64-112 px images, no workers.

    `solver` overrides SOLVER keys (e.g. MAX_ITER=4, CHECKPOINT_PERIOD=2).
    """
    register_tiny(root, prefix)
    cfg = tiny_cfg(QUICK_SCHEDULES / "quickstart.yaml")
    cfg.DATASETS.TRAIN = (f"{prefix}_train",)
    cfg.DATASETS.TEST = ()  # no evaluation after training (DefaultTrainer's EvalHook always runs one)
    cfg.OUTPUT_DIR = str(output_dir)
    cfg.SEED = 7
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.INPUT.MIN_SIZE_TRAIN = (64, 80)
    cfg.INPUT.MAX_SIZE_TRAIN = 112
    cfg.INPUT.MIN_SIZE_TEST = 64
    cfg.INPUT.MAX_SIZE_TEST = 112
    cfg.PS.BACKBONE.update(NAME="mobilenetv2_050", WEIGHTS="")
    cfg.PS.REID.update(EMBED_DIM=16, QUEUE_SIZE=12)
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 100
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 20
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.ROI_BOX_HEAD.update(NUM_FC=1, FC_DIM=32, POOLER_RESOLUTION=4)
    cfg.PS.SOLVER.OPTIMIZER = "SGD"
    cfg.SOLVER.update(IMS_PER_BATCH=2, BASE_LR=0.02, WARMUP_ITERS=0, MAX_ITER=4, CHECKPOINT_PERIOD=1000)
    cfg.SOLVER.update(**solver)
    return cfg


def build_trainer(cfg, resume=False):
    """A PersonSearchTrainer with the model initialised from cfg.SEED on every rank."""
    torch.manual_seed(cfg.SEED)
    trainer = PersonSearchTrainer(cfg)
    trainer.resume_or_load(resume=resume)
    return trainer


def unwrap(model):
    return model.module if hasattr(model, "module") else model


def final_state(trainer):
    """Everything an exact resume / DDP comparison looks at, as CPU tensors."""
    model = unwrap(trainer.model)
    oim = model.roi_heads.reid_branch.oim
    return {
        "iter": trainer.iter,
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "lut": oim.lut.features.clone(),
        "queue": oim.queue.features.clone(),
        "queue_pointer": oim.queue.pointer.clone(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
    }


def run_training(cfg, resume=False):
    trainer = build_trainer(cfg, resume=resume)
    trainer.train()
    return final_state(trainer)


def subsample_labels_in_order(labels, num_samples, positive_fraction, bg_label):
    """Detectron2's `subsample_labels` without the random permutation: the first positives and
    negatives in index order. Makes each image's sampling independent of the other images'."""
    positive = torch.nonzero((labels != -1) & (labels != bg_label), as_tuple=True)[0]
    negative = torch.nonzero(labels == bg_label, as_tuple=True)[0]
    num_pos = min(positive.numel(), int(num_samples * positive_fraction))
    num_neg = min(negative.numel(), num_samples - num_pos)
    return positive[:num_pos], negative[:num_neg]


def sample_in_order():
    """Patch the RPN's and the ROI heads' sampler with `subsample_labels_in_order` (this process)."""
    rpn.subsample_labels = subsample_labels_in_order
    roi_heads.subsample_labels = subsample_labels_in_order


def ddp_main(cfg, root, prefix, state_dir):
    """Per-process entry of `launch`: train with in-order sampling on one thread, then save this
    rank's `final_state` (plus "world_size") to state_dir/rank<r>.pt."""
    torch.set_num_threads(1)
    register_tiny(root, prefix)
    sample_in_order()
    state = run_training(cfg)
    state["world_size"] = comm.get_world_size()
    torch.save(state, os.path.join(state_dir, f"rank{comm.get_rank()}.pt"))
