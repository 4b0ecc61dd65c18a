"""Gradient clipping of build_person_search_optimizer: DiffusionDet's "full_model" type clips the
joint norm of every gradient; Detectron2's "norm" clips each parameter on its own."""
import pytest
import torch
from torch import nn

from ps_plugin.config import get_ps_cfg
from ps_plugin.engine.optimizer import build_person_search_optimizer


class TwoVectors(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(2))
        self.b = nn.Parameter(torch.zeros(2))


def step_with_gradients(clip_type, enabled=True):
    """One SGD step (lr 1, no momentum or decay) with gradients a = (3, 0), b = (0, 4): joint norm 5."""
    cfg = get_ps_cfg()
    cfg.PS.SOLVER.OPTIMIZER = "SGD"
    cfg.SOLVER.update(BASE_LR=1.0, MOMENTUM=0.0, WEIGHT_DECAY=0.0, WEIGHT_DECAY_NORM=0.0)
    cfg.SOLVER.CLIP_GRADIENTS.update(ENABLED=enabled, CLIP_TYPE=clip_type, CLIP_VALUE=1.0, NORM_TYPE=2.0)
    model = TwoVectors()
    optimizer = build_person_search_optimizer(cfg, model)
    model.a.grad, model.b.grad = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])
    optimizer.step()
    return model.a.detach(), model.b.detach()


@pytest.mark.parametrize("clip_type,expected", [
    ("full_model", ([-0.6, 0.0], [0.0, -0.8])),  # both scaled by 1 / 5: the joint norm becomes 1
    ("norm", ([-1.0, 0.0], [0.0, -1.0])),  # each scaled to norm 1 on its own
])
def test_gradient_clipping_types(clip_type, expected):
    a, b = step_with_gradients(clip_type)
    assert torch.allclose(a, torch.tensor(expected[0])) and torch.allclose(b, torch.tensor(expected[1]))


def test_disabled_clipping_leaves_gradients():
    a, b = step_with_gradients("full_model", enabled=False)
    assert torch.equal(a, torch.tensor([-3.0, 0.0])) and torch.equal(b, torch.tensor([0.0, -4.0]))
