"""SPNet parts on constructed inputs: SP Block, anchor matching, loss normalisation, the anchor prior,
pair sampling, MoCo, PT-Rep filling."""
import math

import pytest
import torch
import torch.nn.functional as F
from detectron2.structures import Boxes, Instances

from ps_plugin.config import get_ps_cfg
from ps_plugin.modeling.spnet.box_detector import box_class_loss
from ps_plugin.modeling.spnet.checkpoint import fill_missing_stage_weights
from ps_plugin.modeling.spnet.config import add_spnet_config
from ps_plugin.modeling.spnet.embedders import AnchorEmbedder, BoxEmbedder
from ps_plugin.modeling.spnet.fixed_norm import BatchNormLogits, FixedNormLogits, anchor_bias_value
from ps_plugin.modeling.spnet.matching import (
    anchor_focal_loss,
    build_anchor_matcher,
    hard_qc_anchors,
    match_boxes,
    sample_balanced,
)
from ps_plugin.modeling.spnet.moco import MomentumContrast, positive_centroids
from ps_plugin.modeling.spnet.pair_sampling import box_identity_labels, pair_group, sample_query_pairs
from ps_plugin.modeling.spnet.swap_path import SwapPathBlock


def _spnet_cfg():
    cfg = get_ps_cfg()
    add_spnet_config(cfg)
    return cfg


def test_swap_path_block_pathways():
    x_a, x_q = torch.randn(5, 8), torch.randn(8)
    qc = SwapPathBlock(8, "qc")
    assert torch.equal(qc(x_a, x_q), x_q - x_a)
    assert list(qc.state_dict()) == []  # the Offset Layer has no weights
    oc = SwapPathBlock(8, "oc")
    assert sorted(oc.state_dict()) == ["bridge.bias", "bridge.weight"]
    assert torch.equal(oc(x_a), -x_a)  # zero-initialised bridge: g_phi(x_a) = 0
    with torch.no_grad():
        oc.bridge.weight.copy_(torch.eye(8) * 2)
        oc.bridge.bias.fill_(1.0)
    assert torch.allclose(oc(x_a), x_a + 1.0)  # g_phi(x_a) - x_a = 2 x_a + 1 - x_a
    norms = qc.pairwise_offset_norms(x_a, torch.randn(3, 8))
    assert norms.shape == (3, 5)
    with pytest.raises(ValueError, match="PS.SPNET.MODE"):
        SwapPathBlock(8, "both")


def test_anchor_matching_at_iou_half():
    matcher = build_anchor_matcher(_spnet_cfg())
    gt = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0]]))
    anchors = Boxes(torch.tensor([
        [0.0, 0.0, 10.0, 10.0],   # IoU 1 with gt 0
        [0.0, 0.0, 10.0, 20.0],   # IoU 0.5 with gt 0: positive (>= 0.5)
        [0.0, 0.0, 10.0, 21.0],   # IoU 0.476: negative
        [22.0, 22.0, 40.0, 40.0], # IoU 0.81 with gt 1
        [100.0, 100.0, 110.0, 110.0],
    ]))
    matched, labels = match_boxes(matcher, gt, anchors)
    assert labels.tolist() == [1, 1, 0, 1, 0]
    assert matched[labels == 1].tolist() == [0, 0, 1]
    matched, labels = match_boxes(matcher, gt[:0], anchors)
    assert labels.tolist() == [0] * 5


def test_balanced_sampling_and_focal_loss_normalisation():
    labels = torch.tensor([1] * 10 + [0] * 100 + [-1] * 5)
    chosen = sample_balanced(labels, 16, 0.5)
    assert len(chosen) == 16 and int((labels[chosen] == 1).sum()) == 8 and (labels[chosen] >= 0).all()
    logits = torch.zeros(115)
    # focal loss at p = 0.5 with alpha 0.5, gamma 1: 0.5 * 0.5 * log 2 per anchor
    per_anchor = 0.25 * torch.log(torch.tensor(2.0))
    assert float(anchor_focal_loss(logits, labels, normalization="mean")) == pytest.approx(float(per_anchor))
    assert float(anchor_focal_loss(logits, labels)) == pytest.approx(float(per_anchor) * 11)


def test_focal_and_class_losses_by_positives_by_hand():
    """Default normalisation (authors' code): the sum over non-ignored boxes / number of positives."""
    logits = torch.tensor([2.0, -1.0, 0.0, 3.0, 1.0])
    labels = torch.tensor([1, 0, -1, 0, 1])
    p = [1 / (1 + math.exp(-z)) for z in (2.0, -1.0, 3.0, 1.0)]
    # alpha 0.5, gamma 1: positive 0.5 (1 - p) (-log p), negative 0.5 p (-log(1 - p)); 2 positives
    focal = 0.5 * ((1 - p[0]) * -math.log(p[0]) + p[1] * -math.log(1 - p[1]) + p[2] * -math.log(1 - p[2])
                   + (1 - p[3]) * -math.log(p[3]))
    assert float(anchor_focal_loss(logits, labels)) == pytest.approx(focal / 2, rel=1e-6)
    assert float(anchor_focal_loss(logits, labels, normalization="mean")) == pytest.approx(focal / 4, rel=1e-6)
    valid = labels >= 0
    bce = -(math.log(p[0]) + math.log(1 - p[1]) + math.log(1 - p[2]) + math.log(p[3]))
    assert float(box_class_loss(logits[valid], labels[valid])) == pytest.approx(bce / 2, rel=1e-6)
    assert float(box_class_loss(logits[valid], labels[valid], "mean")) == pytest.approx(bce / 4, rel=1e-6)
    # no positive: divided by 1, and an empty input is a zero loss
    assert float(box_class_loss(logits[1:2], labels[1:2])) == pytest.approx(-math.log(1 - p[1]), rel=1e-6)
    assert float(box_class_loss(logits[:0], labels[:0])) == 0.0


@pytest.mark.parametrize("prior", [0.01, 0.1])
def test_anchor_prior_starts_every_anchor_at_pi(prior):
    """ANCHOR_BIAS_INIT "prior_score": at initialisation every OC anchor's score is ~pi (d = 128)."""
    logits_layer = FixedNormLogits(128)
    bias = anchor_bias_value("prior_score", prior, logits_layer)
    torch.manual_seed(0)
    embedder = AnchorEmbedder(32, 9, 128, bias)
    block = SwapPathBlock(128, "oc")
    features = [torch.randn(2, 32, 8, 8), torch.randn(2, 32, 4, 4)]
    with torch.no_grad():
        scores = torch.sigmoid(logits_layer(block(embedder(features))))
    assert scores.shape == (2, 9 * 80)
    assert float(scores.mean()) == pytest.approx(prior, rel=0.25)  # the N(0, 0.01) weights add a little norm
    assert float(scores.max()) < 2 * prior
    assert anchor_bias_value("prior_channel", 0.01, logits_layer) == pytest.approx(-math.log(99))
    zero_bias = AnchorEmbedder(32, 9, 128, anchor_bias_value("zeros", prior, logits_layer))
    assert float(torch.sigmoid(logits_layer(block(zero_bias(features)))).min()) > 0.99


def test_batch_norm_logits_take_the_prior_in_their_shift():
    logits_layer = BatchNormLogits(128)
    assert anchor_bias_value("prior_score", 0.01, logits_layer) == 0.0
    norms = torch.rand(1000) * 5 + 10
    assert float(torch.sigmoid(logits_layer.from_norm(norms)).mean()) == pytest.approx(0.01, abs=0.01)
    with pytest.raises(ValueError, match="ANCHOR_BIAS_INIT"):
        anchor_bias_value("retinanet", 0.01, logits_layer)
    with pytest.raises(ValueError, match="ANCHOR_PRIOR_PROB"):
        anchor_bias_value("prior_score", 1.0, logits_layer)


def _view(image_id, box_ids, pids):
    inst = Instances((100, 100))
    inst.gt_boxes = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]] * len(box_ids)).reshape(-1, 4))
    inst.gt_pids = torch.tensor(pids, dtype=torch.int64)
    inst.gt_box_ids = torch.tensor(box_ids, dtype=torch.int64)
    return {"instances": inst, "image_id": image_id, "dataset_name": "toy"}


def test_box_identity_labels():
    views = [_view("a", [0, 1], [7, -1]), _view("a", [1], [-1]), _view("b", [0], [7])]
    box = box_identity_labels(views, "box")
    assert box[0][1] == box[1][0]  # the same physical box in two views of one image
    assert box[0][0] != box[2][0]  # same pid, other image: different weak identity
    pid = box_identity_labels(views, "pid")
    assert pid[0][0] == pid[2][0] == 7 and pid[0][1] == pid[1][0] < 0


def test_pair_groups_and_priority_order():
    labels = [torch.tensor([1, 2]), torch.tensor([1]), torch.tensor([3])]
    assert pair_group(0, 1, 1, labels[1]) == 1  # other image holding the query's identity
    assert pair_group(0, 0, 1, labels[0]) == 2  # the query's own image
    assert pair_group(0, 2, 1, labels[2]) == 3  # identity absent
    pairs = sample_query_pairs(labels, max_pairs=100, generator=torch.Generator().manual_seed(0))
    groups = [p.group for p in pairs]
    assert groups == sorted(groups)
    assert groups.count(1) == 2 and groups.count(2) == 4 and groups.count(3) == 6  # 4 queries x 3 images
    for p in pairs:
        if p.group == 3:
            assert p.target == -1
        else:
            assert labels[p.gallery_view][p.target] == labels[p.query_view][p.query_box]
    first = sample_query_pairs(labels, max_pairs=3, generator=torch.Generator().manual_seed(1))
    assert [p.group for p in first] == [1, 1, 2]


def test_moco_positive_is_mean_of_predicted_momentum_embeddings():
    e = F.normalize(torch.randn(6, 4), dim=1)
    labels = torch.tensor([5, 5, 5, 9, 9, 11])
    is_gt = torch.tensor([True, False, False, True, False, True])
    unique, centroids = positive_centroids(e, labels, is_gt)
    assert unique.tolist() == [5, 9, 11]
    assert torch.allclose(centroids[0], F.normalize(e[1] + e[2], dim=0))  # predicted boxes only
    assert torch.allclose(centroids[1], e[4])
    assert torch.allclose(centroids[2], e[5])  # no predicted box: the GT embedding
    _, with_gt = positive_centroids(e, labels, is_gt, include_gt=True)
    assert torch.allclose(with_gt[0], F.normalize(e[0] + e[1] + e[2], dim=0))


def test_moco_queue_and_loss():
    backbone, embedder = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    embedder.dim = 4
    moco = MomentumContrast(backbone, embedder, queue_size=4, momentum=0.5, temperature=0.1)
    moco.enqueue(torch.tensor([1, 2, 3]), F.normalize(torch.randn(3, 4), dim=1))
    moco.enqueue(torch.tensor([2, 4]), F.normalize(torch.randn(2, 4), dim=1))
    # slot 1 (old label 2) emptied, slot 0 overwritten (wrap-around) by label 4
    assert moco.queue_labels.tolist() == [4, MomentumContrast.EMPTY, 3, 2]
    x = F.normalize(torch.randn(2, 4), dim=1)
    loss = moco.loss(x, torch.tensor([3, 4]))
    filled = moco.queue_labels != MomentumContrast.EMPTY
    logits = x @ moco.queue[filled].t() / 0.1
    expected = F.cross_entropy(logits, torch.tensor([1, 0]))
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("momentum", [0.9, 0.9999])
def test_moco_key_encoder_moves_one_minus_m_of_the_gap(momentum):
    """theta_m <- m * theta_m + (1 - m) * theta_e closes (1 - m) of the gap to the online encoder (m != 0.5:
    with m and 1 - m swapped the key encoder would close m of it, nearly copying the online one at
    0.9999); buffers are copied."""
    backbone, embedder = torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(4)
    embedder.dim = 4
    moco = MomentumContrast(backbone, embedder, queue_size=4, momentum=momentum)
    with torch.no_grad():
        backbone.weight.add_(1.0)  # gap 1 on every weight, none on the bias
        embedder.weight.fill_(3.0)  # BatchNorm weight starts at 1: gap 2
        embedder.running_mean.fill_(0.5)
    key_weight, key_bias = moco.momentum_backbone.weight.clone(), moco.momentum_backbone.bias.clone()
    moco.update_momentum(backbone, embedder)
    assert torch.allclose(moco.momentum_backbone.weight - key_weight, torch.full((3, 2), 1 - momentum), atol=1e-6)
    assert torch.allclose(moco.momentum_backbone.bias, key_bias, atol=1e-6)
    assert torch.allclose(moco.momentum_embedder.weight, torch.full((4,), 1 + 2 * (1 - momentum)), atol=1e-6)
    assert torch.equal(moco.momentum_embedder.running_mean, torch.full((4,), 0.5))


def test_fill_missing_stage_weights_pt_rep_and_shared_into_separate():
    model_state = {
        "cascade.stages.0.box_detector.w": torch.zeros(2),
        "cascade.stages.1.box_detector.w": torch.zeros(2),
        "cascade.stages.1.sp_block.bridge.weight": torch.zeros(2, 2),
        "cascade.stages.1.box_embedder.head.w": torch.zeros(3),
        "cascade.stages.1.box_embedder.output_projection.weight": torch.zeros(4, 3),
        "reid_embedder.head.w": torch.zeros(3),
    }
    checkpoint = {
        "cascade.stages.0.box_detector.w": torch.ones(2),
        "reid_embedder.head.w": torch.full((3,), 2.0),
        "reid_embedder.output_projection.weight": torch.ones(1, 3),  # other shape: not copied
    }
    pt = fill_missing_stage_weights(dict(checkpoint), model_state, replicate=False)
    assert pt == []
    # OC with separate heads has no stage-0 detection Box Embedder: plain PT fills stage 1's
    pt = fill_missing_stage_weights(dict(checkpoint), model_state, replicate=False, first_detection_stage=1)
    assert pt == [("cascade.stages.1.box_embedder.head.w", "reid_embedder.head.w")]
    filled = fill_missing_stage_weights(checkpoint, model_state, replicate=True)
    assert dict(filled) == {
        "cascade.stages.1.box_detector.w": "cascade.stages.0.box_detector.w",
        "cascade.stages.1.box_embedder.head.w": "reid_embedder.head.w",
    }
    assert torch.equal(checkpoint["cascade.stages.1.box_detector.w"], torch.ones(2))
    assert "cascade.stages.1.sp_block.bridge.weight" not in checkpoint  # QC checkpoint: bridge keeps init


def test_hard_qc_anchors_by_hand():
    """Authors' 'posneg' choice with K = 4: 2 highest-GIoU anchors, then the 2 first (by index) of the
    4 smallest-norm anchors not taken; without the target the 4 smallest-norm anchors."""
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0],
                            [0.0, 0.0, 9.0, 9.0], [30.0, 30.0, 40.0, 40.0], [70.0, 70.0, 80.0, 80.0],
                            [20.0, 0.0, 30.0, 10.0]])
    target = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    norms = torch.tensor([5.0, 0.5, 0.1, 9.0, 0.3, 0.2, 7.0])
    # GIoU ranks anchors 0 (1.0) and 3 (0.81) first; smallest norms: 2, 5, 4, 1 -> not taken, in index order: 1, 2
    assert hard_qc_anchors(anchors, target, norms, 4).tolist() == [0, 3, 1, 2]
    assert sorted(hard_qc_anchors(anchors, target[:0], norms, 4).tolist()) == [1, 2, 4, 5]


def test_checkpointed_box_embedder_head_gives_the_same_output_and_gradients():
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU())
    embedder = BoxEmbedder(in_feature="p3", stride=8, pooler_resolution=6, sampling_ratio=2, head=head,
                           in_channels=8, head_channels=16, dim=8, split_projection=True)
    features = torch.randn(1, 8, 12, 12, requires_grad=True)
    boxes = [torch.tensor([[0.0, 0.0, 40.0, 80.0], [10.0, 5.0, 60.0, 90.0], [30.0, 30.0, 90.0, 90.0]])]
    results = []
    for chunk in (0, 2):
        embedder.checkpoint_chunk = chunk
        features.grad = None
        embedder.zero_grad()
        out = embedder({"p3": features}, boxes)
        out.pow(2).sum().backward()
        results.append((out.detach(), features.grad.clone(), head[0].weight.grad.clone()))
    for plain, checkpointed in zip(*results):
        assert torch.allclose(plain, checkpointed, rtol=1e-5, atol=1e-5)  # summation order only
