"""PSDiff Collaborative Denoising Layer: shapes, Table IV switches, cascaded vs parallel prediction."""
import pytest
import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec

from ps_plugin.config import get_ps_cfg
from ps_plugin.modeling.psdiff import add_psdiff_config
from ps_plugin.modeling.psdiff.cdl import CollaborativeDenoisingLayer
from ps_plugin.modeling.psdiff.denoiser import PSDiffDenoiser

C, D, B, N = 32, 16, 2, 6
STRIDES = {"p2": 4, "p3": 8, "p4": 16, "p5": 32}
INPUT_SHAPE = {name: ShapeSpec(channels=C, stride=s) for name, s in STRIDES.items()}


def _cfg(**psdiff):
    cfg = get_ps_cfg()
    add_psdiff_config(cfg)
    p = cfg.PS.PSDIFF
    p.HIDDEN_DIM, p.NUM_ATTENTION_HEADS, p.DYNAMIC_DIM = C, 4, 8
    cfg.PS.REID.EMBED_DIM = D
    for key, value in psdiff.items():
        p[key] = value
    return cfg


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    features = [torch.randn(B, C, 64 // s, 96 // s, generator=g) for s in STRIDES.values()]
    xy = torch.rand(B, N, 2, generator=g) * torch.tensor([60.0, 40.0])
    boxes = torch.cat([xy, xy + 5 + torch.rand(B, N, 2, generator=g) * 20], dim=-1)
    reid = F.normalize(torch.randn(B, N, D, generator=g), dim=-1)
    return features, boxes, reid


def _run_stage(cfg, seed=0):
    stage = CollaborativeDenoisingLayer(cfg, INPUT_SHAPE)
    features, boxes, reid = _inputs(seed)
    return stage, stage(features, boxes, reid, torch.randn(B, 4 * C))


def test_cdl_output_shapes():
    _, out = _run_stage(_cfg())
    assert out["pred_logits"].shape == (B, N, 1)
    assert out["pred_boxes"].shape == (B, N, 4)
    assert out["pred_embeddings"].shape == (B, N, D)


@pytest.mark.parametrize(
    "switches",
    [
        {"USE_SELF_ATTENTION": False},
        {"USE_DYNAMIC_CONV": False},
        {"USE_CROSS_ATTENTION": False},
        {"USE_SELF_ATTENTION": False, "USE_DYNAMIC_CONV": False, "USE_CROSS_ATTENTION": False},
        {"SELF_ATTENTION_OVER": "tokens"},
    ],
    ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()),
)
def test_interaction_switches_keep_fc_at_2c(switches):
    stage = CollaborativeDenoisingLayer(_cfg(**switches), INPUT_SHAPE)
    fused = []
    stage.interaction.register_forward_hook(lambda m, i, o: fused.append(o))
    features, boxes, reid = _inputs()
    out = stage(features, boxes, reid, torch.randn(B, 4 * C))
    assert fused[0].shape == (B * N, 2 * C)
    assert out["pred_embeddings"].shape == (B, N, D)
    for key, module in (("USE_SELF_ATTENTION", "self_attention"), ("USE_DYNAMIC_CONV", "dynamic_conv"), ("USE_CROSS_ATTENTION", "cross_attention")):
        assert (getattr(stage.interaction, module) is not None) == switches.get(key, True)


def test_self_attention_over_boxes_mixes_boxes_of_one_image_only():
    stage = CollaborativeDenoisingLayer(_cfg(), INPUT_SHAPE).eval()
    features, boxes, reid = _inputs()
    time = torch.randn(B, 4 * C)
    base = stage(features, boxes, reid, time)["pred_embeddings"]
    moved = boxes.clone()
    moved[0, 0] += 3.0  # move one box of image 0
    out = stage(features, moved, reid, time)["pred_embeddings"]
    assert not torch.allclose(out[0, 1:], base[0, 1:])  # the other boxes of image 0 see it
    assert torch.allclose(out[1], base[1], atol=1e-6)  # image 1 does not


@pytest.mark.parametrize("mode", ["cascaded", "parallel"])
def test_cascaded_feeds_e0_into_detection_head_and_parallel_does_not(mode):
    stage = CollaborativeDenoisingLayer(_cfg(PREDICTION=mode), INPUT_SHAPE)
    seen = {}
    stage.predictor.detection_head.register_forward_hook(lambda m, i, o: seen.update(det_input=i[0]))
    stage.predictor.embedding_head.register_forward_hook(lambda m, i, o: seen.update(e0=o))
    features, boxes, reid = _inputs()
    out = stage(features, boxes, reid, torch.randn(B, 4 * C))
    if mode == "cascaded":
        assert seen["det_input"] is seen["e0"]
    else:
        assert seen["det_input"].shape == (B * N, 2 * C)
    (out["pred_logits"].sum() + out["pred_boxes"].sum()).backward()
    embed_grad = stage.predictor.embedding_head.output.weight.grad
    if mode == "cascaded":  # box / class losses reach the embedding head through F_o = ê0
        assert embed_grad is not None and embed_grad.abs().sum() > 0
    else:
        assert embed_grad is None


def test_stacked_stages_pass_boxes_and_embeddings_and_count():
    denoiser = PSDiffDenoiser(_cfg(NUM_STAGES=3), INPUT_SHAPE)
    features, boxes, reid = _inputs()
    outputs = denoiser(features, boxes, reid, torch.tensor([10, 900]))
    assert len(outputs) == 3 and all(o["pred_boxes"].shape == (B, N, 4) for o in outputs)
    single = PSDiffDenoiser(_cfg(), INPUT_SHAPE)
    assert len(single.stages) == 1  # paper: a single denoising layer


def test_channel_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="HIDDEN_DIM"):
        CollaborativeDenoisingLayer(_cfg(HIDDEN_DIM=64), INPUT_SHAPE)
    with pytest.raises(ValueError, match="PREDICTION"):
        CollaborativeDenoisingLayer(_cfg(PREDICTION="serial"), INPUT_SHAPE)
