"""Gradient clipping of build_person_search_optimizer: DiffusionDet's "full_model" type clips the
joint norm of every gradient; Detectron2's "norm" clips each parameter on its own. Parameter groups:
the backbone LR / WD covers the whole backbone or only the network under its FPN (SPNet). The PSDiff
configs' warm-up and clipping reach the solver."""
import pytest
import torch
from detectron2.modeling import build_backbone
from torch import nn

from common import CONFIGS, QUICK_SCHEDULES
from ps_plugin.config import get_ps_cfg
from ps_plugin.engine import PersonSearchTrainer
from ps_plugin.engine.optimizer import build_person_search_optimizer
from ps_plugin.modeling.psdiff import add_psdiff_config


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


def base_spnet_backbone_group():
    cfg = get_ps_cfg()
    cfg.merge_from_file(str(CONFIGS / "Base-SPNet.yaml"))
    assert cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE == "full_model" and cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE == 10.0
    return cfg.PS.SOLVER.BACKBONE_GROUP


def spnet_optimizer_groups(backbone_group):
    """{parameter name: (lr, weight decay)} of the AdamW that Base-SPNet.yaml builds for SPNet's
    MobileNetV2 + FPN backbone (backbone LR 1e-5, post-backbone 1e-4)."""
    cfg = get_ps_cfg()
    cfg.merge_from_file(str(QUICK_SCHEDULES / "spnet_mnv2_oc_synthps.yaml"))
    cfg.PS.BACKBONE.WEIGHTS = ""
    cfg.PS.SOLVER.update(BACKBONE_BASE_LR=1e-5, BACKBONE_WEIGHT_DECAY=0.0, BACKBONE_GROUP=backbone_group)
    cfg.SOLVER.update(BASE_LR=1e-4, WEIGHT_DECAY=1e-3, WEIGHT_DECAY_NORM=1e-3)
    model = nn.Module()
    model.backbone = build_backbone(cfg)
    model.head = nn.Linear(2, 2)
    optimizer = build_person_search_optimizer(cfg, model)
    by_id = {id(p): (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}
    return {name: by_id[id(p)] for name, p in model.named_parameters()}


def test_spnet_fpn_is_in_the_head_group():
    """Base-SPNet.yaml: only the network under the FPN takes the backbone LR / WD; the FPN laterals,
    outputs and P6/P7 train like the heads (authors' `backbone.body` group)."""
    groups = spnet_optimizer_groups(base_spnet_backbone_group())
    fpn = [n for n in groups if n.startswith("backbone.") and not n.startswith("backbone.bottom_up.")]
    assert any("top_block.p6" in n for n in fpn) and any("fpn_lateral" in n for n in fpn)
    assert {groups[n] for n in fpn} == {(1e-4, 1e-3)} == {groups["head.weight"]}
    assert {groups[n] for n in groups if n.startswith("backbone.bottom_up.")} == {(1e-5, 0.0)}
    whole = spnet_optimizer_groups("backbone")
    assert {whole[n] for n in fpn} == {(1e-5, 0.0)}
    with pytest.raises(ValueError, match="BACKBONE_GROUP"):
        spnet_optimizer_groups("body")
