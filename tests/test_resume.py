"""Exact resume: M iterations, a new trainer with resume=True to 2M == 2M uninterrupted iterations.

Covered: SGD momentum and AdamW moments, every rank's torch / numpy / python RNG states (one process
and 2 gloo processes), and the AMP grad scaler (its checkpoint round trip only: Detectron2 0.6's
AMPTrainer asserts CUDA in every step, so AMP cannot train on CPU).
"""
import os
import random

import numpy as np
import pytest
import torch
from detectron2.engine import AMPTrainer, HookBase
from detectron2.utils import comm

from ps_plugin.data.samplers import rng_state
from ps_plugin.engine import PersonSearchTrainer, launch
from ps_plugin.engine import trainer as trainer_module
from train_fixtures import build_trainer, final_state, run_training, tiny_synthps, tiny_train_cfg

M = 2
NUM_PROCESSES = 2
OPTIMIZER_STATE_KEYS = {"SGD": {"momentum_buffer"}, "AdamW": {"step", "exp_avg", "exp_avg_sq"}}


class Interrupted(RuntimeError):
    pass


class InterruptAfter(HookBase):
    """Raise after the hooks of iteration `last_iter` ran (the periodic checkpoint is on disk)."""

    def __init__(self, last_iter):
        self.last_iter = last_iter

    def after_step(self):
        if self.trainer.iter == self.last_iter:
            raise Interrupted(f"interrupted after iteration {self.last_iter}")


class RecordRNG(HookBase):
    """`rng_state()` after the hooks of iteration `at_iter` (the state a checkpoint there holds)."""

    def __init__(self, at_iter):
        self.at_iter = at_iter
        self.state = None

    def after_step(self):
        if self.trainer.iter == self.at_iter:
            self.state = rng_state()


def seed_all_rngs(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def same_rng(a, b):
    """Equal `rng_state()` values: tensors by torch.equal, tuples / dicts element by element."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(same_rng(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_rng(a[k], b[k]) for k in a)
    return a == b


@pytest.fixture(scope="module")
def synthps_root(tmp_path_factory):
    return tiny_synthps(tmp_path_factory.mktemp("synthps"))


def resume_cfg(root, output_dir, optimizer="SGD"):
    cfg = tiny_train_cfg(root, "resume", output_dir, MAX_ITER=2 * M, CHECKPOINT_PERIOD=M)
    cfg.PS.SOLVER.OPTIMIZER = optimizer
    if optimizer == "AdamW":
        cfg.SOLVER.BASE_LR = 1e-3
    return cfg


def assert_states_equal(resumed, uninterrupted, optimizer="SGD"):
    """Bitwise equal final states."""
    assert resumed["iter"] == uninterrupted["iter"] == 2 * M
    assert resumed["model"].keys() == uninterrupted["model"].keys()
    for name, value in uninterrupted["model"].items():
        assert torch.equal(resumed["model"][name], value), name
    assert torch.equal(resumed["lut"], uninterrupted["lut"])
    assert torch.equal(resumed["queue"], uninterrupted["queue"])
    assert int(resumed["queue_pointer"]) == int(uninterrupted["queue_pointer"])
    assert resumed["scheduler"] == uninterrupted["scheduler"]
    assert resumed["optimizer"]["param_groups"] == uninterrupted["optimizer"]["param_groups"]
    resumed_buffers, uninterrupted_buffers = resumed["optimizer"]["state"], uninterrupted["optimizer"]["state"]
    assert resumed_buffers.keys() == uninterrupted_buffers.keys() and len(resumed_buffers) > 0
    for index, buffers in uninterrupted_buffers.items():
        assert set(buffers) == OPTIMIZER_STATE_KEYS[optimizer], index
        assert resumed_buffers[index].keys() == buffers.keys(), index
        for key, value in buffers.items():
            assert torch.equal(torch.as_tensor(resumed_buffers[index][key]), torch.as_tensor(value)), (index, key)


def train_whole(cfg, seed=None):
    """The uninterrupted run (RNGs reseeded with `seed` after the model is built, if given) and
    its RNG states at the checkpoint iteration M - 1."""
    trainer = build_trainer(cfg)
    if seed is not None:
        seed_all_rngs(seed)
    at_checkpoint = RecordRNG(M - 1)
    trainer.register_hooks([at_checkpoint])
    trainer.train()
    return trainer, at_checkpoint.state


def train_interrupted(cfg, seed=None):
    """Train until after iteration M - 1 (checkpoint model_<M-1>.pth written), then stop."""
    trainer = build_trainer(cfg)
    if seed is not None:
        seed_all_rngs(seed)
    trainer.register_hooks([InterruptAfter(M - 1)])
    with pytest.raises(Interrupted):
        trainer.train()
    return trainer


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["SGD", "AdamW"])
def test_resume_equals_uninterrupted_run(synthps_root, tmp_path, optimizer):
    """Bitwise equal weights, banks, optimizer buffers (momentum / AdamW moments and step) and
    schedule; right after loading, the RNG states are those of the uninterrupted run at the
    checkpoint (the RNGs are reseeded before the resume so a missing restore shows)."""
    whole, at_checkpoint = train_whole(resume_cfg(synthps_root, tmp_path / "full", optimizer))
    uninterrupted = final_state(whole)

    cfg = resume_cfg(synthps_root, tmp_path / "split", optimizer)
    first = train_interrupted(cfg)
    assert sorted(f for f in os.listdir(tmp_path / "split") if f.endswith(".pth")) == [f"model_{M - 1:07d}.pth"]
    assert not torch.equal(final_state(first)["lut"], uninterrupted["lut"])

    seed_all_rngs(12345)
    second = build_trainer(cfg, resume=True)
    assert same_rng(rng_state(), at_checkpoint)
    assert second.start_iter == M
    second.train()
    assert_states_equal(final_state(second), uninterrupted, optimizer)


def cpu_grad_scaler():
    return torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=2)


def test_amp_grad_scaler_is_checkpointed_and_restored(synthps_root, tmp_path, monkeypatch):
    """SOLVER.AMP.ENABLED on a CUDA device builds Detectron2's AMPTrainer (on CPU the trainer falls back
    to float32, so `use_amp` is made to answer as on a GPU). Its CUDA scaler is disabled here (empty
    state) and it cannot train (it asserts CUDA), so an enabled CPU scaler is put in its place. After
    3 finite steps with growth_interval 2 its scale has doubled once (1024 -> 2048) and its growth
    tracker is 1; the checkpoint must hold that, and a resumed trainer's fresh scaler must get it."""
    monkeypatch.setattr(trainer_module, "use_amp", lambda cfg: cfg.SOLVER.AMP.ENABLED)
    cfg = resume_cfg(synthps_root, tmp_path)
    cfg.SOLVER.AMP.ENABLED = True
    first = build_trainer(cfg)
    assert isinstance(first._trainer, AMPTrainer)
    scaler = first._trainer.grad_scaler = cpu_grad_scaler()
    weight = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        scaler.scale(weight.sum()).backward()
        scaler.step(optimizer)
        scaler.update()
    expected = {"scale": 2048.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2, "_growth_tracker": 1}
    assert scaler.state_dict() == expected
    first.iter = M - 1  # what the periodic checkpointer writes after iteration M - 1
    first.checkpointer.save(f"model_{M - 1:07d}", iteration=M - 1)
    checkpoint = torch.load(tmp_path / f"model_{M - 1:07d}.pth", weights_only=True)
    assert checkpoint["trainer"]["_trainer"]["grad_scaler"] == expected

    torch.manual_seed(cfg.SEED)
    second = PersonSearchTrainer(cfg)
    second._trainer.grad_scaler = cpu_grad_scaler()
    second.resume_or_load(resume=True)
    assert second.start_iter == M
    assert second._trainer.grad_scaler.state_dict() == expected


def ddp_resume_main(root, output_dir, state_dir):
    """Per process: an uninterrupted run and an interrupted + resumed one, each rank with its own
    RNG seeds; saves both final states and the RNG states at the checkpoint and after resuming."""
    torch.set_num_threads(1)
    rank = comm.get_rank()
    whole, at_checkpoint = train_whole(resume_cfg(root, os.path.join(output_dir, "full")), seed=100 + rank)
    cfg = resume_cfg(root, os.path.join(output_dir, "split"))
    train_interrupted(cfg, seed=100 + rank)
    comm.synchronize()  # rank 0 has written the checkpoint

    seed_all_rngs(12345)
    second = build_trainer(cfg, resume=True)
    after_resume = rng_state()
    second.train()
    torch.save(
        {"whole": final_state(whole), "resumed": final_state(second), "at_checkpoint": at_checkpoint,
         "after_resume": after_resume, "start_iter": second.start_iter},
        os.path.join(state_dir, f"rank{rank}.pt"),
    )


@pytest.mark.slow
def test_two_process_resume_restores_each_ranks_rng_and_equals_uninterrupted_run(synthps_root, tmp_path):
    """2 gloo processes with different seeds per rank: the checkpoint holds each rank's RNG
    states in rank order, each rank gets its own back on resume, and the resumed run ends
    bitwise equal to the uninterrupted 2-process run on every rank, BatchNorm running statistics
    included (BroadcastBatchNormStatistics keeps the ranks' statistics equal to the checkpointed ones)."""
    state_dir = tmp_path / "states"
    state_dir.mkdir()
    launch(ddp_resume_main, NUM_PROCESSES, dist_url="auto", args=(str(synthps_root), str(tmp_path), str(state_dir)))
    ranks = [torch.load(state_dir / f"rank{r}.pt", weights_only=False) for r in range(NUM_PROCESSES)]

    for kind in ("torch", "numpy", "python"):
        assert not same_rng(ranks[0]["at_checkpoint"][kind], ranks[1]["at_checkpoint"][kind]), kind
    checkpoint = torch.load(tmp_path / "split" / f"model_{M - 1:07d}.pth", weights_only=True)
    saved = checkpoint["trainer"]["rng"]
    assert len(saved) == NUM_PROCESSES
    for rank, state in enumerate(ranks):
        assert same_rng(saved[rank], state["at_checkpoint"]), rank
        assert same_rng(state["after_resume"], state["at_checkpoint"]), rank
    for rank, state in enumerate(ranks):
        assert state["start_iter"] == M
        assert_states_equal(state["resumed"], state["whole"])
