"""Export of a HybridPretrain checkpoint (tools/convert_pretrained.py --source ps-checkpoint): the
backbone, or backbone + heads, loads into the baseline and into PSDiff (an FPN on the same body)
with every backbone tensor of the body matched; the IAMs, the predictor and the identity tables stay out."""
import sys

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer

from common import CONFIGS, REPO_ROOT, tiny_cfg
from ps_plugin.modeling.pretrain.export import export_pretrained
from test_model_baseline import build, tiny_model_cfg
from test_pretrain_model import pretrain_cfg

sys.path.insert(0, str(REPO_ROOT / "tools"))
import convert_pretrained  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = build(pretrain_cfg(), seed=1)
    path = tmp_path_factory.mktemp("pretrain") / "model_final.pth"
    torch.save({"model": model.state_dict(), "iteration": 9}, path)
    return path, model.state_dict()


def export(checkpoint, parts, tmp_path):
    output = tmp_path / f"{parts}.pth"
    assert convert_pretrained.main(["--source", "ps-checkpoint", "--parts", parts, "--input", str(checkpoint[0]),
                                    "--output", str(output)]) == 0
    return output


def body_tensors(state_dict):
    """The timm body's tensors, keyed by their name inside the body."""
    return {k.split("body.", 1)[1]: v for k, v in state_dict.items() if k.startswith("backbone.") and "body." in k}


@pytest.mark.parametrize("parts", ["backbone", "all"])
def test_export_loads_into_the_baseline(checkpoint, parts, tmp_path):
    target = build(tiny_model_cfg(), seed=2)
    DetectionCheckpointer(target).load(str(export(checkpoint, parts, tmp_path)))
    source, loaded = checkpoint[1], target.state_dict()
    backbone = [k for k in loaded if k.startswith("backbone.")]
    assert backbone and all(torch.equal(loaded[k], source[k]) for k in backbone)
    heads_equal = torch.equal(loaded["roi_heads.box_head.fc1.weight"], source["roi_heads.box_head.fc1.weight"])
    assert heads_equal == (parts == "all")
    assert torch.equal(loaded["roi_heads.reid_branch.oim.lut.features"], torch.zeros_like(loaded["roi_heads.reid_branch.oim.lut.features"]))


def test_export_backbone_loads_into_psdiff_fpn(checkpoint, tmp_path):
    cfg = tiny_cfg(CONFIGS / "quick_schedules" / "psdiff_tiny_synthps.yaml")
    cfg.PS.BACKBONE.NAME = "mobilenetv2_050"
    target = build(cfg, seed=3)
    DetectionCheckpointer(target).load(str(export(checkpoint, "backbone", tmp_path)))
    source, loaded = body_tensors(checkpoint[1]), body_tensors(target.state_dict())
    # PSDiff's body goes on to res5 (blocks 5-6), which the res4 pre-training model does not have.
    assert source and set(source) <= set(loaded)
    assert all(torch.equal(loaded[k], source[k]) for k in source)


def test_export_leaves_pretraining_parts_out_and_rejects_other_files():
    state = {"backbone.body.w": torch.ones(1), "predictor.fc1.weight": torch.ones(1), "det_iam.x": torch.ones(1),
             "reid_iam.x": torch.ones(1), "roi_heads.reid_branch.oim.lut.features": torch.ones(1),
             "roi_heads.box_head.fc1.weight": torch.ones(1)}
    assert set(export_pretrained(state, "all")) == {"body.w", "roi_heads.box_head.fc1.weight"}
    assert set(export_pretrained(state, "backbone")) == {"body.w"}
    assert set(export_pretrained({"backbone.bottom_up.res2.w": torch.ones(1)}, "backbone")) == {"res2.w"}
    with pytest.raises(ValueError, match="no 'backbone.\\*' tensor"):
        export_pretrained({"model.w": torch.ones(1)}, "all")
    with pytest.raises(ValueError, match="--parts must be one of"):
        export_pretrained(state, "heads")
