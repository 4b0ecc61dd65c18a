"""HybridPretrain: SimSiam by hand (stop-gradient, pairing, collapse measure), the full loss on a tiny
CPU model with two views and two datasets, and its bad inputs."""
import math

import pytest
import torch
import torch.nn.functional as F
from detectron2.structures import Boxes
from detectron2.utils.events import EventStorage

from ps_plugin.modeling.common.views import flatten_views
from ps_plugin.modeling.pretrain.meta_arch import gt_box_features, task_ids
from ps_plugin.modeling.pretrain.simsiam import (
    PredictionMLP,
    embedding_spread,
    negative_cosine,
    paired_box_rows,
    simsiam_loss,
)
from ps_plugin.structures import VIEWS
from test_model_baseline import build, image, person_instances, tiny_model_cfg, train_step


def test_negative_cosine_by_hand():
    target = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    prediction = torch.tensor([[1.0, 1.0], [0.0, -3.0]])
    assert negative_cosine(target, prediction).item() == pytest.approx(-(2 ** -0.5 - 1.0) / 2)


def test_no_gradient_flows_through_the_stop_gradient_branch():
    """d L_con / d h1 comes only from z1 = MLP(h1) against the detached h2 (Eq. 6)."""
    torch.manual_seed(0)
    predictor = PredictionMLP(4, 3).eval()
    h1, h2 = torch.randn(5, 4, requires_grad=True), torch.randn(5, 4, requires_grad=True)
    simsiam_loss(h1, h2, predictor).backward()
    h1_only = h1.detach().clone().requires_grad_(True)
    (0.5 * negative_cosine(h2.detach(), predictor(h1_only))).backward()
    assert torch.allclose(h1.grad, h1_only.grad, atol=1e-7)


def test_pairs_follow_box_ids_and_skip_lost_boxes():
    rows_1, rows_2 = paired_box_rows(torch.tensor([3, 0, 5, 1]), torch.tensor([1, 3, 0]))
    assert rows_1.tolist() == [0, 1, 3] and rows_2.tolist() == [1, 2, 0]
    rows_1, rows_2 = paired_box_rows(torch.tensor([2]), torch.tensor([], dtype=torch.int64))
    assert rows_1.numel() == rows_2.numel() == 0


def test_embedding_spread_separates_collapse_from_spread():
    torch.manual_seed(0)
    assert embedding_spread(torch.ones(50, 16)) == pytest.approx(0.0, abs=1e-6)
    assert 0.9 < embedding_spread(torch.randn(2000, 16)) < 1.1


def pretrain_cfg(det_iam=True, reid_iam=True, c4=False):
    cfg = tiny_model_cfg(c4=c4)
    cfg.MODEL.META_ARCHITECTURE = "HybridPretrain"
    cfg.DATASETS.TRAIN = ("detection_set", "crop_set")
    cfg.PS.PRETRAIN.update(IAM_HIDDEN_DIM=8, PREDICTOR_HIDDEN_DIM=4, DET_IAM=det_iam, REID_IAM=reid_iam)
    return cfg


def view(seed, boxes, pids, box_ids, dataset_id):
    instances = person_instances(boxes, pids)
    instances.gt_box_ids = torch.tensor(box_ids, dtype=torch.int64)
    return {"image": image(seed), "instances": instances, "dataset_id": dataset_id}


def two_view_batch(second_view_boxes=([12, 8, 44, 84], [58, 24, 92, 94])):
    """A detection image (instance ids, 2 views) and a labelled crop canvas (one view)."""
    detection = {
        "instance_ids": True, "dataset_id": 0,
        VIEWS: [view(1, [[10, 10, 40, 80], [60, 20, 90, 90]], [0, 1], [0, 1], 0),
                view(2, list(second_view_boxes), [0, 1][:len(second_view_boxes)], [0, 1][:len(second_view_boxes)], 0)],
    }
    crop = view(3, [[30, 5, 70, 90]], [2], [0], 1)
    return [detection, crop]


def test_flatten_views_keeps_each_input_s_views_in_order():
    batch = two_view_batch()
    assert [id(v) for v in flatten_views(batch)] == [id(v) for v in batch[0][VIEWS] + [batch[1]]]


@pytest.mark.parametrize("c4", [False, True])
def test_gt_box_embeddings_are_the_baseline_heads_own(c4):
    """The SimSiam / re-id IAM embeddings of boxes are what the baseline's embed_boxes gives them."""
    model = build(pretrain_cfg(c4=c4)).eval()
    features = model.backbone(model.preprocess_image([view(1, [], [], [], 0)]).tensor)
    boxes = [Boxes(torch.tensor([[10.0, 10.0, 40.0, 80.0], [60.0, 20.0, 90.0, 90.0]]))]
    maps, box_features, embeddings = gt_box_features(model.roi_heads, features, boxes)
    assert torch.allclose(embeddings, model.roi_heads.embed_boxes(features, boxes)[0], atol=1e-6)
    assert maps.dim() == 4 and len(maps) == len(box_features) == 2


ADV_KEYS = {f"loss_adv_{iam}_{k}" for iam in ("det", "reid") for k in ("img", "ins", "cst")}


@pytest.mark.parametrize("c4", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_all_losses_are_finite_and_reach_the_predictor_and_both_iams(c4):
    model = build(pretrain_cfg(c4=c4))
    losses = train_step(model, two_view_batch())
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_oim", "loss_con"} | ADV_KEYS
    assert all(torch.isfinite(v) for v in losses.values())
    assert -1.0 <= losses["loss_con"].item() <= 1.0
    for module in (model.predictor, model.det_iam, model.reid_iam):
        assert sum(p.grad.abs().sum() for p in module.parameters() if p.grad is not None) > 0


def test_a_view_that_loses_every_box_gives_zero_contrastive_loss_with_the_graph_intact():
    model = build(pretrain_cfg(det_iam=False, reid_iam=False))
    losses = train_step(model, two_view_batch(second_view_boxes=()))
    assert losses["loss_con"].item() == 0.0
    assert not ADV_KEYS & set(losses)
    assert all(p.grad is not None for p in model.predictor.parameters())


def test_iams_need_dataset_ids_that_fit_the_classifiers():
    model = build(pretrain_cfg())
    batch = two_view_batch()
    del batch[1]["dataset_id"]
    with pytest.raises(ValueError, match="PS.DATA.TRAIN_RATIOS"):
        train_step(model, batch)
    batch = two_view_batch()
    batch[1]["dataset_id"] = 2
    with pytest.raises(ValueError, match="do not fit a domain classifier of 2 classes"):
        train_step(model, batch)
    cfg = pretrain_cfg()
    cfg.DATASETS.TRAIN = ("only_one",)
    with pytest.raises(ValueError, match="DATASETS.TRAIN has 1"):
        build(cfg)


def test_task_ids_follow_the_crop_box():
    views = [{"image_id": "scene"}, {"image_id": "crop", "crop_box": [0, 0, 4, 8]}]
    assert task_ids(views, "cpu").tolist() == [0, 1]


INTER_KEYS = {f"loss_adv_inter_{k}" for k in ("img", "ins", "cst")}


def inter_task_batch():
    """A detection scene (2 boxes) and a unified crop (1 box, its record's "crop_box"), one view each."""
    scene = view(1, [[10, 10, 40, 80], [60, 20, 90, 90]], [0, 1], [0, 1], 0)
    crop = dict(view(3, [[30, 5, 70, 90]], [2], [0], 1), crop_box=[0.0, 0.0, 40.0, 85.0])
    return [scene, crop]


def inter_task_cfg(inter_task=True, **kwargs):
    cfg = pretrain_cfg(**kwargs)
    cfg.PS.PRETRAIN.INTER_TASK_AM = inter_task
    return cfg


def test_inter_task_alignment_is_off_by_default_and_leaves_the_other_losses_unchanged():
    assert pretrain_cfg().PS.PRETRAIN.INTER_TASK_AM is False
    off_model, on_model = build(pretrain_cfg()), build(inter_task_cfg())
    torch.manual_seed(1)  # the same proposal sampling in both
    off = train_step(off_model, two_view_batch())
    torch.manual_seed(1)
    on = train_step(on_model, two_view_batch())
    assert off_model.inter_task_am is None and set(on) == set(off) | INTER_KEYS
    assert [k for k in off if not torch.equal(off[k], on[k])] == []
    image_layer, instance_layer = on_model.inter_task_am.image_classifier.layers, on_model.inter_task_am.instance_classifier.layers
    assert (image_layer[0].in_channels, image_layer[-1].out_channels) == (on_model.backbone.output_shape()["res4"].channels, 2)
    assert instance_layer[0].in_features == on_model.backbone.output_shape()["res4"].channels  # ROI maps, averaged


@pytest.mark.parametrize("c4", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_inter_task_losses_by_hand_with_fixed_classifier_outputs(c4):
    """Both classifiers predict p = (1/4, 3/4) everywhere: L_img = mean over the 2 images of -log p[task],
    L_ins = mean over the 3 boxes (2 from the scene, task 0; 1 from the crop, task 1), L_cst = 0."""
    model = build(inter_task_cfg(det_iam=False, reid_iam=False, c4=c4))
    for classifier in (model.inter_task_am.image_classifier, model.inter_task_am.instance_classifier):
        last = classifier.layers[-1]
        torch.nn.init.zeros_(last.weight)
        last.bias.data = torch.tensor([0.0, math.log(3.0)])
    losses = train_step(model, inter_task_batch())
    lam = model.lam
    assert losses["loss_adv_inter_img"].item() == pytest.approx(lam * (math.log(4) + math.log(4 / 3)) / 2, rel=1e-5)
    assert losses["loss_adv_inter_ins"].item() == pytest.approx(lam * (2 * math.log(4) + math.log(4 / 3)) / 3, rel=1e-5)
    assert losses["loss_adv_inter_cst"].item() == pytest.approx(0.0, abs=1e-6)


def test_the_backbone_receives_the_reversed_gradient_of_the_inter_task_terms():
    """grad of the inter-task terms at the backbone = -GRL_WEIGHT x their gradient without reversal."""
    cfg = inter_task_cfg(det_iam=False, reid_iam=False)
    cfg.PS.PRETRAIN.GRL_WEIGHT = 0.5
    model = build(cfg)
    params = [p for p in model.backbone.parameters() if p.requires_grad]

    def backbone_grad():
        torch.manual_seed(0)
        model.train()
        with EventStorage():
            losses = model(inter_task_batch())
        return torch.autograd.grad(sum(losses[k] for k in INTER_KEYS), params, allow_unused=True)

    reversed_grads = backbone_grad()
    for classifier in (model.inter_task_am.image_classifier, model.inter_task_am.instance_classifier):
        classifier.grl.weight = -1.0  # the backward multiplies by -weight: +1, no reversal
    plain_grads = backbone_grad()
    reached = [(r, p) for r, p in zip(reversed_grads, plain_grads) if r is not None]
    assert reached and sum(p.abs().sum() for _, p in reached) > 0
    assert all(torch.allclose(r, -0.5 * p, atol=1e-6) for r, p in reached)
