"""2-process gloo DDP on CPU through ps_plugin.engine.launch == a 1-process run over the same global batch.

What makes the two runs comparable (each point is a real difference, removed on purpose):
- The training stream: rank r of R takes its slice of the global positions (StreamPositionSampler)
  and every sample carries its own augmentation seed, so the global batch is the same images.
- One input size (INPUT.MIN_SIZE_TRAIN has one entry): ImageList pads a batch to its largest
  image, so a 2-image batch has anchors on padding that a 1-image batch lacks.
- Frozen BN, no BN in the re-id head: BatchNorm statistics would be per-rank batch statistics.
- In-order proposal / anchor sampling (`subsample_labels_in_order`): Detectron2 permutes with
  torch's RNG, and the draws of image 2 depend on what image 1 drew in a 1-process run.
- PS.REID.LOSS_WEIGHT = 0 for the weight comparison: OIM's cross entropy is a mean over each rank's
  labeled proposals; DDP averages the per-rank means, which is not the mean over the global batch
  when ranks hold different numbers of labeled proposals. The lookup table and the queue are still
  updated (from features all-gathered in rank order). The RPN and box losses are normalised by a
  per-image constant (RPN) or by ROI_HEADS.BATCH_SIZE_PER_IMAGE x images (every image fills it
  here), so their DDP average equals the 1-process loss.
What remains is float summation order (per-rank convolutions over 2 images, then a gloo
all-reduce, against one 4-image pass): after the first step the weight difference is below 1e-3
of the step's update plus a few float32 ulps; over later steps it grows (measured 3.7e-2 of the update, 7e-6 absolute,
after 3 steps), as NMS and top-k decisions amplify it. The banks stay within 4e-7.
"""
import os

import pytest
import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.modeling.proposal_generator import rpn
from detectron2.modeling.roi_heads import roi_heads
from detectron2.utils import comm

from common import QUICK_SCHEDULES, tiny_cfg
from laid_fixtures import laid_cfg
from ola_fixtures import ola_cfg
from ps_plugin.engine import PersonSearchTrainer, launch
from ps_plugin.modeling.spnet.box_detector import box_class_loss
from ps_plugin.modeling.spnet.matching import anchor_focal_loss
from test_pretrain_training import pretrain_train_cfg, register_pretrain_views
from train_fixtures import (
    build_trainer,
    ddp_main,
    final_state,
    register_tiny,
    subsample_labels_in_order,
    tiny_synthps,
    tiny_train_cfg,
)

NUM_PROCESSES = 2


def comparable_cfg(root, output_dir):
    cfg = tiny_train_cfg(root, "ddp", output_dir, IMS_PER_BATCH=4, MAX_ITER=3, CHECKPOINT_PERIOD=1)
    cfg.INPUT.MIN_SIZE_TRAIN = (64,)
    cfg.PS.REID.update(HEAD_BN=False, LOSS_WEIGHT=0.0)
    cfg.PS.BACKBONE.FREEZE_BN = True
    return cfg


def assert_close(actual, expected, what, atol):
    assert torch.allclose(actual, expected, rtol=0, atol=atol), f"{what}: max |diff| {(actual - expected).abs().max()}"


def assert_same_first_step(ddp_checkpoint, single_checkpoint, initial_model):
    """Weights after iteration 0 differ by < 1e-3 of that iteration's update + 1e-6 (float32 ulps)."""
    ddp, single = (torch.load(path, weights_only=True)["model"] for path in (ddp_checkpoint, single_checkpoint))
    updated = 0
    for name, value in single.items():
        update = (value - initial_model[name]).abs().max()
        if value.is_floating_point() and update > 0:
            assert_close(ddp[name], value, name, atol=1e-3 * update + 1e-6)
            updated += 1
    assert updated > 10


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process_run(tmp_path, monkeypatch):
    root = tiny_synthps(tmp_path / "synthps")
    state_dir = tmp_path / "states"
    state_dir.mkdir()
    cfg = comparable_cfg(root, tmp_path / "ddp")
    launch(ddp_main, NUM_PROCESSES, dist_url="auto", args=(cfg, str(root), "ddp", str(state_dir)))
    ranks = [torch.load(state_dir / f"rank{r}.pt", weights_only=False) for r in range(NUM_PROCESSES)]

    monkeypatch.setattr(rpn, "subsample_labels", subsample_labels_in_order)
    monkeypatch.setattr(roi_heads, "subsample_labels", subsample_labels_in_order)
    single_trainer = build_trainer(comparable_cfg(root, tmp_path / "single"))
    initial = {k: v.clone() for k, v in single_trainer.model.state_dict().items()}
    single_trainer.train()
    single = final_state(single_trainer)

    assert [r["world_size"] for r in ranks] == [NUM_PROCESSES] * NUM_PROCESSES
    assert ranks[0]["iter"] == ranks[1]["iter"] == single["iter"] == 3
    for key in ("lut", "queue", "queue_pointer"):
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    for name, value in ranks[0]["model"].items():
        assert torch.equal(ranks[1]["model"][name], value), name

    assert torch.count_nonzero(single["lut"].norm(dim=1)) >= 2 and int(single["queue_pointer"]) > 0
    assert int(ranks[0]["queue_pointer"]) == int(single["queue_pointer"])
    assert_close(ranks[0]["lut"], single["lut"], "lookup table", atol=1e-5)
    assert_close(ranks[0]["queue"], single["queue"], "queue", atol=1e-5)
    assert_same_first_step(tmp_path / "ddp" / "model_0000000.pth", tmp_path / "single" / "model_0000000.pth", initial)
    for name, value in single["model"].items():
        assert_close(ranks[0]["model"][name].float(), value.float(), name, atol=1e-4)


def _spnet_losses_by_positives(logits, labels):
    """(L_anc, L_cls) with the default "num_pos" normalisation and d(L_anc + L_cls)/d logits."""
    logits = logits.clone().requires_grad_(True)
    anchor = anchor_focal_loss(logits, labels)
    valid = labels >= 0
    cls = box_class_loss(logits[valid], labels[valid])
    (anchor + cls).backward()
    return torch.stack([anchor.detach(), cls.detach()]), logits.grad


SPNET_SPLIT = 7  # rank 0 holds anchors [0, 7) with 1 positive, rank 1 the rest with 3


def _spnet_logits_and_labels():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(20, generator=generator) * 2
    labels = torch.tensor([1, 0, 0, -1, 0, 0, 0] + [1, 1, 0, 0, -1, 0, 1, 0, 0, 0, 0, 0, 0])
    return logits, labels


def _spnet_normaliser_main(state_dir):
    torch.set_num_threads(1)
    logits, labels = _spnet_logits_and_labels()
    part = slice(0, SPNET_SPLIT) if comm.get_rank() == 0 else slice(SPNET_SPLIT, None)
    losses, grad = _spnet_losses_by_positives(logits[part], labels[part])
    torch.save({"losses": losses, "grad": grad}, os.path.join(state_dir, f"rank{comm.get_rank()}.pt"))


@pytest.mark.slow
def test_spnet_loss_normalisation_by_positives_is_the_same_for_one_and_two_processes(tmp_path):
    """The positives are all-reduced, so DDP's mean of the ranks' losses (and gradients) is the
    1-process loss over all anchors, though the ranks hold 1 and 3 of the 4 positives."""
    launch(_spnet_normaliser_main, NUM_PROCESSES, dist_url="auto", args=(str(tmp_path),))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(NUM_PROCESSES)]
    single_losses, single_grad = _spnet_losses_by_positives(*_spnet_logits_and_labels())
    ddp_losses = (ranks[0]["losses"] + ranks[1]["losses"]) / NUM_PROCESSES
    assert_close(ddp_losses, single_losses, "losses", atol=1e-6)
    ddp_grad = torch.cat([ranks[0]["grad"], ranks[1]["grad"]]) / NUM_PROCESSES
    assert_close(ddp_grad, single_grad, "gradient", atol=1e-7)
    # each rank divides by 4 / 2 positives, not by its own 1 or 3
    logits, labels = _spnet_logits_and_labels()
    for rank, part, own_positives in ((0, slice(0, SPNET_SPLIT), 1), (1, slice(SPNET_SPLIT, None), 3)):
        own_losses, _ = _spnet_losses_by_positives(logits[part], labels[part])
        assert_close(ranks[rank]["losses"], own_losses * own_positives / 2, f"rank {rank}", atol=1e-6)


def _tiny_input(cfg, root, prefix, output_dir):
    """`cfg` on the tiny SynthPS `prefix`, 64-96 px input and 64 px crops, 2 iterations of 2 images
    (one per rank), no evaluation, random backbones."""
    register_tiny(root, prefix)
    cfg.MODEL.update(DEVICE="cpu", WEIGHTS="")
    cfg.PS.BACKBONE.WEIGHTS = ""
    cfg.DATASETS.update(TRAIN=(f"{prefix}_train",), TEST=())
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.INPUT.update(MIN_SIZE_TRAIN=(64,), MAX_SIZE_TRAIN=96, MIN_SIZE_TEST=64, MAX_SIZE_TEST=96)
    cfg.PS.INPUT.update(WINDOW_MIN_SIZE=64, WINDOW_MAX_SIZE=96, CROP_SIZE=64)
    cfg.SOLVER.update(IMS_PER_BATCH=2, MAX_ITER=2, WARMUP_ITERS=0, CHECKPOINT_PERIOD=1000)
    cfg.OUTPUT_DIR = str(output_dir)
    cfg.SEED = 3
    return cfg


def every_meta_architecture_cfgs(root, work_dir):
    """{run name: config} covering every meta-architecture ps_plugin registers: the baseline, SPNet QC
    (pre-training: MoCo, 2 views) and OC with the SPNet-L layout (separate heads, a cascade step),
    PSDiff with a saved random baseline as its teacher, OLA (memory init and clustering hooks),
    HybridPretrain (a detection-only view mixed with crops, alignment modules on) and LAID (source and
    target images on every rank, stage 1 at iteration 0)."""
    prefix = "ddp_archs"
    baseline = tiny_train_cfg(root, prefix, work_dir / "baseline", MAX_ITER=2)
    spnet_qc = _tiny_input(tiny_cfg(QUICK_SCHEDULES / "spnet_tiny_qc_synthps.yaml"), root, prefix, work_dir / "qc")
    spnet_qc.PS.SPNET.TRAIN.update(NUM_SAMPLED_ANCHORS=64, QC_PAIRS_PER_BATCH=4)
    spnet_qc.PS.SPNET.REID.MOCO_QUEUE_SIZE = 64
    spnet_oc = _tiny_input(spnet_qc.clone(), root, prefix, work_dir / "oc")
    spnet_oc.PS.SPNET.update(MODE="oc", SHARED_HEADS=False, CASCADE_STEPS=1)
    spnet_oc.PS.SPNET.REID.LOSS, spnet_oc.PS.SPNET.TRAIN.LABELS = "oim", "pid"
    spnet_oc.PS.INPUT.update(TRAIN_AUG="rrc2", NUM_VIEWS=1)
    spnet_oc.PS.REID.update(EMBED_DIM=32, QUEUE_SIZE=12)
    teacher_dir = work_dir / "teacher"
    teacher_dir.mkdir()
    torch.manual_seed(0)
    DetectionCheckpointer(PersonSearchTrainer.build_model(baseline), str(teacher_dir)).save("model_final")
    (teacher_dir / "config.yaml").write_text(baseline.dump())
    psdiff = _tiny_input(tiny_cfg(QUICK_SCHEDULES / "psdiff_tiny_synthps.yaml"), root, prefix, work_dir / "psdiff")
    psdiff.PS.REID.EMBED_DIM = baseline.PS.REID.EMBED_DIM
    psdiff.PS.PSDIFF.update(NUM_PROPOSALS_TRAIN=10, NUM_PROPOSALS_TEST=10)
    psdiff.PS.PSDIFF.TEACHER.update(CONFIG_FILE=str(teacher_dir / "config.yaml"),
                                    WEIGHTS=str(teacher_dir / "model_final.pth"))
    ola = ola_cfg(root, prefix, work_dir / "ola", MAX_ITER=2)
    pretrain = pretrain_train_cfg(root, work_dir / "pretrain", prefix=prefix, MAX_ITER=2)
    laid = laid_cfg(root, prefix, work_dir / "laid", IMS_PER_BATCH=4, MAX_ITER=2)
    return {"baseline": baseline, "spnet_qc": spnet_qc, "spnet_oc": spnet_oc, "psdiff": psdiff, "ola": ola,
            "pretrain": pretrain, "laid": laid}


def _train_each_main(cfgs, root, state_dir):
    """Per process: train every config (DDP without find_unused_parameters: an unused parameter stops
    the second iteration), then record the iterations each reached on this rank."""
    torch.set_num_threads(1)
    register_tiny(root, "ddp_archs")
    register_pretrain_views("ddp_archs")
    reached = {}
    for name, cfg in cfgs.items():
        trainer = build_trainer(cfg)
        trainer.train()
        reached[name] = trainer.iter
    torch.save(reached, os.path.join(state_dir, f"rank{comm.get_rank()}.pt"))


@pytest.mark.slow
def test_every_meta_architecture_trains_two_iterations_on_two_processes(tmp_path):
    root = tiny_synthps(tmp_path / "synthps")
    cfgs = every_meta_architecture_cfgs(root, tmp_path)
    registered = {name for name, cls in META_ARCH_REGISTRY if cls.__module__.startswith("ps_plugin.")}
    assert {cfg.MODEL.META_ARCHITECTURE for cfg in cfgs.values()} == registered
    launch(_train_each_main, NUM_PROCESSES, dist_url="auto", args=(cfgs, str(root), str(tmp_path)))
    for rank in range(NUM_PROCESSES):
        assert torch.load(tmp_path / f"rank{rank}.pt") == {name: 2 for name in cfgs}
