"""Gradient clipping of build_person_search_optimizer: DiffusionDet's "full_model" type clips the
joint norm of every gradient; Detectron2's "norm" clips each parameter on its own. The PSDiff configs'
warm-up and clipping reach the solver."""
import pytest
import torch
from torch import nn

from ps_plugin.config import get_ps_cfg
from ps_plugin.engine import PersonSearchTrainer
from ps_plugin.engine.optimizer import build_person_search_optimizer
from ps_plugin.modeling.psdiff import add_psdiff_config

from common import CONFIGS


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


@pytest.mark.parametrize("name", ["psdiff_r50.yaml", "psdiff_swin_b.yaml"])
def test_psdiff_configs_give_the_solver_diffusiondet_warmup_and_full_model_clipping(name):
    """Linear warm-up from 1 % of BASE_LR over 1,000 iterations, and the joint gradient norm clipped at 1."""
    cfg = get_ps_cfg()
    add_psdiff_config(cfg)
    cfg.merge_from_file(str(CONFIGS / name))
    model = TwoVectors()
    optimizer = build_person_search_optimizer(cfg, model)
    scheduler = PersonSearchTrainer.build_lr_scheduler(cfg, optimizer)
    base_lr = cfg.SOLVER.BASE_LR
    lrs = []
    for _ in range(1001):
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    assert lrs[0] == pytest.approx(0.01 * base_lr)
    assert lrs[500] == pytest.approx((0.01 + 0.99 * 0.5) * base_lr)
    assert lrs[1000] == pytest.approx(base_lr)
    model.a.grad, model.b.grad = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])
    optimizer.step()  # clip_grad_norm_ rescales the gradients in place before the AdamW update
    assert torch.cat([model.a.grad, model.b.grad]).tolist() == pytest.approx([0.6, 0.0, 0.0, 0.8])
