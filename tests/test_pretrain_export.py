"""Export of a HybridPretrain checkpoint (tools/convert_pretrained.py --source ps-checkpoint): the
backbone, or backbone + heads, loads into the baseline with every backbone tensor matched; the IAMs,
the predictor and the identity tables stay out; a load that fills under 95 % of the target's backbone
(PSDiff's deeper body) is an error, where Detectron2 only warns."""
import sys

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer

from common import CONFIGS, REPO_ROOT, tiny_cfg
from ps_plugin.engine import PersonSearchCheckpointer
from ps_plugin.modeling.pretrain.export import check_backbone_match, export_pretrained
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
    PersonSearchCheckpointer(target).load(str(export(checkpoint, parts, tmp_path)))
    source, loaded = checkpoint[1], target.state_dict()
    backbone = [k for k in loaded if k.startswith("backbone.")]
    assert backbone and all(torch.equal(loaded[k], source[k]) for k in backbone)
    heads_equal = torch.equal(loaded["roi_heads.box_head.fc1.weight"], source["roi_heads.box_head.fc1.weight"])
    assert heads_equal == (parts == "all")
    assert torch.equal(loaded["roi_heads.reid_branch.oim.lut.features"], torch.zeros_like(loaded["roi_heads.reid_branch.oim.lut.features"]))


def test_c4_backbone_export_carries_res5_into_the_c4_heads(tmp_path):
    source = build(pretrain_cfg(c4=True), seed=1).state_dict()
    torch.save({"model": source}, tmp_path / "c4.pth")
    target = build(tiny_model_cfg(c4=True), seed=2)
    PersonSearchCheckpointer(target).load(str(export((tmp_path / "c4.pth", source), "backbone", tmp_path)))
    loaded = target.state_dict()
    moved = [k for k in loaded if k.startswith(("backbone.", "roi_heads.res5."))]
    assert any(k.startswith("roi_heads.res5.") for k in moved) and all(torch.equal(loaded[k], source[k]) for k in moved)
    assert not torch.equal(loaded["roi_heads.box_predictor.cls_score.weight"], source["roi_heads.box_predictor.cls_score.weight"])


def test_export_into_a_deeper_fpn_body_is_an_error_where_detectron2_warns(checkpoint, tmp_path):
    """PSDiff's body goes on to res5 (blocks 5-6), which the res4 pre-training model does not have:
    Detectron2 loads the shared blocks and logs the rest; the export's load refuses it. A training
    checkpoint (no declared minimum) still loads as in Detectron2."""
    cfg = tiny_cfg(CONFIGS / "quick_schedules" / "psdiff_tiny_synthps.yaml")
    cfg.PS.BACKBONE.NAME = "mobilenetv2_050"
    target = build(cfg, seed=3)
    exported = str(export(checkpoint, "backbone", tmp_path))
    DetectionCheckpointer(target).load(exported)
    source, loaded = body_tensors(checkpoint[1]), body_tensors(target.state_dict())
    assert source and set(source) <= set(loaded)
    assert all(torch.equal(loaded[k], source[k]) for k in source)
    with pytest.raises(ValueError, match=rf"'{exported}' initialises {len(source)} of the model's {len(loaded)} backbone"):
        PersonSearchCheckpointer(target).load(exported)
    PersonSearchCheckpointer(target).load(str(checkpoint[0]))


def test_backbone_match_counts_the_body_only():
    body = [f"backbone.bottom_up.w{i}" for i in range(20)]
    model_keys = body + ["backbone.fpn_lateral4.weight", "roi_heads.box_head.fc1.weight"]
    check_backbone_match(model_keys, body[:1] + model_keys[20:], 0.95, "x.pth")  # 19 / 20: the FPN and heads do not count
    with pytest.raises(ValueError, match=r"'x.pth' initialises 18 of the model's 20 backbone tensors \(90.0%"):
        check_backbone_match(model_keys, body[:2], 0.95, "x.pth")
    check_backbone_match(["backbone.res4.w", "roi_heads.res5.w"], ["roi_heads.res5.w"], 1.0, "c4.pth")  # no FPN: backbone.*


def test_export_leaves_pretraining_parts_out_and_rejects_other_files():
    state = {"backbone.body.w": torch.ones(1), "predictor.fc1.weight": torch.ones(1), "det_iam.x": torch.ones(1),
             "reid_iam.x": torch.ones(1), "inter_task_am.x": torch.ones(1), "roi_heads.reid_branch.oim.lut.features": torch.ones(1),
             "roi_heads.box_head.fc1.weight": torch.ones(1)}
    assert set(export_pretrained(state, "all")) == {"body.w", "roi_heads.box_head.fc1.weight"}
    assert set(export_pretrained(state, "backbone")) == {"body.w"}
    assert set(export_pretrained({"backbone.bottom_up.res2.w": torch.ones(1)}, "backbone")) == {"res2.w"}
    c4 = {"backbone.res4.w": torch.ones(1), "roi_heads.res5.0.conv1.weight": torch.ones(1), "roi_heads.box_predictor.w": torch.ones(1)}
    assert set(export_pretrained(c4, "backbone")) == {"res4.w", "res5.0.conv1.weight"}  # C4's res5 is ResNet's body
    with pytest.raises(ValueError, match="no 'backbone.\\*' tensor"):
        export_pretrained({"model.w": torch.ones(1)}, "all")
    with pytest.raises(ValueError, match="--parts must be one of"):
        export_pretrained(state, "heads")
