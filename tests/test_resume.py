"""Exact resume: M iterations, a new trainer with resume=True to 2M == 2M uninterrupted iterations."""
import os

import pytest
import torch
from detectron2.engine import HookBase

from train_fixtures import build_trainer, final_state, run_training, tiny_synthps, tiny_train_cfg

M = 2


class Interrupted(RuntimeError):
    pass


class InterruptAfter(HookBase):
    """Raise after the hooks of iteration `last_iter` ran (the periodic checkpoint is on disk)."""

    def __init__(self, last_iter):
        self.last_iter = last_iter

    def after_step(self):
        if self.trainer.iter == self.last_iter:
            raise Interrupted(f"interrupted after iteration {self.last_iter}")


@pytest.fixture(scope="module")
def synthps_root(tmp_path_factory):
    return tiny_synthps(tmp_path_factory.mktemp("synthps"))


def assert_states_equal(resumed, uninterrupted):
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
        assert resumed_buffers[index].keys() == buffers.keys(), index
        for key, value in buffers.items():  # SGD momentum, AdamW moments and step
            assert torch.equal(torch.as_tensor(resumed_buffers[index][key]), torch.as_tensor(value)), (index, key)


@pytest.mark.slow
def test_resume_equals_uninterrupted_run(synthps_root, tmp_path):
    solver = {"MAX_ITER": 2 * M, "CHECKPOINT_PERIOD": M}
    uninterrupted = run_training(tiny_train_cfg(synthps_root, "resume", tmp_path / "full", **solver))

    cfg = tiny_train_cfg(synthps_root, "resume", tmp_path / "split", **solver)
    first = build_trainer(cfg)
    first.register_hooks([InterruptAfter(M - 1)])
    with pytest.raises(Interrupted):
        first.train()
    assert sorted(f for f in os.listdir(tmp_path / "split") if f.endswith(".pth")) == [f"model_{M - 1:07d}.pth"]
    assert not torch.equal(final_state(first)["lut"], uninterrupted["lut"])

    second = build_trainer(cfg, resume=True)
    assert second.start_iter == M
    second.train()
    assert_states_equal(final_state(second), uninterrupted)
