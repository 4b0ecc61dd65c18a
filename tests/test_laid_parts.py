"""LAID's parts on hand-built cases: CAIM (eq. 1-3) against a brute-force assignment and DSCA's greedy
rule, DSCL's union-find grouping and losses (eq. 4-8), TSA's KL (eq. 10), and the PS.LAID keys."""
import itertools
import math

import pytest
import torch

from ps_plugin.config import get_ps_cfg
from ps_plugin.modeling.laid import (
    CostAwareInstanceMatching,
    IntraImageLoss,
    TaskSensitivityAlignment,
    TrackCache,
    batch_hard_triplet_loss,
    binary_kl,
    cross_domain_contrastive_loss,
    greedy_assignment,
    jv_assignment,
    separation_loss,
    union_find_groups,
)
from ps_plugin.modeling.laid.caim import box_iou

GATE = 0.7


def strip(*spans):
    """Boxes of unit height from (x1, x2) spans: their IoU is the 1-D interval IoU."""
    return torch.tensor([[x1, 0.0, x2, 1.0] for x1, x2 in spans])


def caim(**changes):
    settings = {"score_thresh": 0.98, "loose_factor": 0.95, "momentum": 0.6, **changes}
    return CostAwareInstanceMatching(**settings)


def history(boxes, features=None, track_ids=None):
    features = torch.eye(len(boxes), 4) if features is None else features
    track_ids = torch.arange(len(boxes)) if track_ids is None else torch.as_tensor(track_ids)
    return TrackCache(boxes, features, track_ids, next_id=len(boxes))


def brute_force(iou, gate):
    """(most valid pairs, least total cost 1 - IoU among those) over every one-to-one matching."""
    rows, cols = iou.shape
    best = (0, 0.0)
    for choice in itertools.product(range(-1, cols), repeat=rows):
        used = [c for c in choice if c >= 0]
        if len(used) != len(set(used)) or any(iou[r, c] <= gate for r, c in enumerate(choice) if c >= 0):
            continue
        key = (len(used), sum(1 - float(iou[r, c]) for r, c in enumerate(choice) if c >= 0))
        if key[0] > best[0] or (key[0] == best[0] and key[1] < best[1]):
            best = key
    return best


@pytest.mark.parametrize("seed", range(12))
def test_jv_equals_brute_force_minimum_cost_under_the_gate(seed):
    generator = torch.Generator().manual_seed(seed)
    people = torch.rand(4, generator=generator) * 12
    past = strip(*[(x, x + 10) for x in people.tolist()])
    shift = torch.randn(5, generator=generator) * 1.5
    now = strip(*[(x + s, x + s + 10) for x, s in zip(people.tolist() + [people[0].item() + 2], shift.tolist())])
    iou = box_iou(past, now)
    rows, cols = jv_assignment(iou, GATE)
    count, cost = brute_force(iou, GATE)
    assert len(rows) == count and len(set(rows.tolist())) == len(rows) == len(set(cols.tolist()))
    assert bool((iou[rows, cols] > GATE).all())
    assert float((1 - iou[rows, cols]).sum()) == pytest.approx(cost, abs=1e-6)


def test_jv_keeps_identities_where_greedy_merges_two_overlapping_people():
    # Two people side by side: A's new box overlaps B's old box more than its own old box.
    past = strip((0, 10), (2, 12))
    now = strip((1.5, 11.5), (3, 13))
    iou = box_iou(past, now)
    assert iou[0, 0] > GATE and iou[1, 0] > iou[0, 0] and iou[1, 1] > GATE and iou[0, 1] <= GATE
    scores = torch.tensor([0.99, 0.99])
    features = torch.eye(2, 4)
    jv, _ = caim(matching="jv").update(history(past), now, features, scores)
    greedy, _ = caim(matching="greedy").update(history(past), now, features, scores)
    assert jv.track_ids.tolist() == [0, 1]
    assert greedy.track_ids.tolist() == [1, 1]
    assert greedy_assignment(iou, GATE)[0].tolist() == [1, 1]


def test_matched_boxes_and_features_are_smoothed_with_lambda():
    past_box, now_box = torch.tensor([[10.0, 10, 50, 110]]), torch.tensor([[12.0, 14, 52, 110]])
    past_feature, now_feature = torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([[0.0, 1, 0, 0]])
    cache, source = caim(momentum=0.6).update(
        history(past_box, past_feature, [7]), now_box, now_feature, torch.tensor([0.99])
    )
    assert torch.allclose(cache.boxes, 0.6 * past_box + 0.4 * now_box)
    assert torch.allclose(cache.features, torch.tensor([[0.6, 0.4, 0, 0]]))
    assert cache.track_ids.tolist() == [7] and source.tolist() == [0]


def test_loose_candidates_keep_a_low_confidence_track_that_strict_ones_drop():
    past = strip((0, 10))
    now = strip((0.5, 10.5), (30, 40))
    # 0.96 lies between alpha * epsilon = 0.931 and epsilon = 0.98.
    scores = torch.tensor([0.96, 0.99])
    features = torch.eye(2, 4)
    loose, loose_source = caim(loose=True).update(history(past), now, features, scores)
    strict, strict_source = caim(loose=False).update(history(past), now, features, scores)
    assert loose.track_ids.tolist() == [0, 1] and loose_source.tolist() == [0, 1]
    assert strict.track_ids.tolist() == [1] and strict_source.tolist() == [1]
    assert loose.next_id == strict.next_id == 2


def test_new_tracks_above_epsilon_and_an_image_keeps_its_top_box():
    now = strip((0, 10), (20, 30), (40, 50))
    features = torch.eye(3, 4)
    first, source = caim().update(TrackCache.empty(4), now, features, torch.tensor([0.99, 0.5, 0.985]))
    assert source.tolist() == [0, 2] and first.track_ids.tolist() == [0, 1]
    assert torch.equal(first.boxes, now[[0, 2]])
    weak, source = caim().update(TrackCache.empty(4), now, features, torch.tensor([0.3, 0.6, 0.5]))
    assert source.tolist() == [1] and weak.track_ids.tolist() == [0]


def test_union_find_groups_chains_of_overlaps():
    # 0-1 and 1-2 overlap above theta, 0-2 do not: one group by transitivity; 3 stands alone.
    boxes = strip((0, 10), (5, 15), (10, 20), (40, 50))
    assert box_iou(boxes[:1], boxes[2:3]).item() == 0.0
    assert union_find_groups(boxes, 0.3).tolist() == [0, 0, 0, 1]
    assert union_find_groups(boxes, 0.4).tolist() == [0, 1, 2, 3]
    assert union_find_groups(boxes[:0], 0.3).tolist() == []


def _unit_embeddings():
    """e0, e1 in one group, e2 in another: S02 = 0.9, S12 = 0.6, S01 = 0.54."""
    return torch.tensor([[0.9, math.sqrt(1 - 0.81), 0.0], [0.6, 0.0, 0.8], [1.0, 0.0, 0.0]])


def test_separation_loss_by_hand():
    groups = torch.tensor([0, 0, 1])
    embeddings = _unit_embeddings()
    # Omega: (0,2), (2,0), (1,2), (2,1); hinge max(S - 0.5, 0): 0.4, 0.4, 0.1, 0.1; tau 0.1.
    weights = [math.exp(4), math.exp(4), math.exp(1), math.exp(1)]
    expected = sum(w * h for w, h in zip(weights, [0.4, 0.4, 0.1, 0.1])) / sum(weights) / 4
    assert separation_loss(embeddings, groups, 0.5, 0.1).item() == pytest.approx(expected, rel=1e-5)
    assert separation_loss(embeddings, groups, 0.95, 0.1).item() == 0.0
    assert separation_loss(embeddings, torch.zeros(3, dtype=torch.int64), 0.0, 0.1).item() == 0.0


def test_separation_gradient_pushes_cross_group_pairs_apart():
    embeddings = _unit_embeddings().requires_grad_()
    separation_loss(embeddings, torch.tensor([0, 0, 1]), 0.5, 0.1).backward()
    stepped = torch.nn.functional.normalize(embeddings - 1.0 * embeddings.grad, dim=1).detach()
    assert (stepped[0] @ stepped[2]).item() < 0.9


def test_intra_image_loss_averages_images_with_two_groups_and_uses_the_domain_margin():
    boxes = [strip((0, 10), (1, 11), (40, 50)), strip((0, 10), (1, 11))]
    embeddings = [_unit_embeddings(), _unit_embeddings()[:2]]
    loss = IntraImageLoss(margins={"source": 0.5, "target": 0.7}, temperature=0.1)
    groups = torch.tensor([0, 0, 1])
    for domain, margin in (("source", 0.5), ("target", 0.7)):
        expected = separation_loss(embeddings[0], groups, margin, 0.1).item()
        assert expected > 0 and loss(boxes, embeddings, domain).item() == pytest.approx(expected)
    assert loss(boxes[1:], embeddings[1:], "source").item() == 0.0
    off = IntraImageLoss(kind="none", margins={"source": 0.5, "target": 0.7}, temperature=0.1)
    assert off(boxes, embeddings, "source").item() == 0.0


def test_batch_hard_triplet_by_hand():
    embeddings = _unit_embeddings()
    # Anchors 0 and 1 have a positive (each other, S = 0.54) and a negative (S 0.9, 0.6); 2 has none.
    expected = ((0.9 - 0.54 + 0.5) + (0.6 - 0.54 + 0.5)) / 2
    assert batch_hard_triplet_loss(embeddings, torch.tensor([0, 0, 1]), 0.5).item() == pytest.approx(expected)


def test_cross_domain_contrastive_loss_by_hand():
    proxies = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])  # 1 source, 1 target, 1 hard negative
    embeddings = torch.tensor([[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([1, 0, -1])
    tau = 0.5
    first = -math.log(math.exp(0.8 / tau) / (math.exp(0.6 / tau) + math.exp(0.8 / tau) + math.exp(-0.6 / tau)))
    second = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 1 + math.exp(-1 / tau)))
    loss = cross_domain_contrastive_loss(embeddings, proxies, targets, tau)
    assert loss.item() == pytest.approx((first + second) / 2, rel=1e-6)
    assert cross_domain_contrastive_loss(embeddings, proxies, torch.full((3,), -1), tau).item() == 0.0


def test_tsa_kl_by_hand_and_no_gradient_into_q():
    q_logits = torch.tensor([1.386294, -0.5], requires_grad=True)
    p = torch.tensor([0.6, 0.3], requires_grad=True)
    q = torch.sigmoid(q_logits)
    expected = [
        qi * math.log(qi / pi) + (1 - qi) * math.log((1 - qi) / (1 - pi)) for qi, pi in zip(q.tolist(), p.tolist())
    ]
    assert binary_kl(q, p).tolist() == pytest.approx(expected, rel=1e-5)
    loss = TaskSensitivityAlignment(mode="rpn_from_reid")(p, q)
    assert loss.item() == pytest.approx(sum(expected) / 2, rel=1e-5)
    loss.backward()
    assert q_logits.grad is None and p.grad.abs().sum() > 0
    # d KL / d p = (p - q) / (p (1 - p)) per proposal, halved by the mean.
    expected_grad = [(pi - qi) / (pi * (1 - pi)) / 2 for qi, pi in zip(q.tolist(), p.tolist())]
    assert p.grad.tolist() == pytest.approx(expected_grad, rel=1e-4)


def test_tsa_bidirectional_and_off():
    q_logits = torch.tensor([0.3, -1.0], requires_grad=True)
    p = torch.tensor([0.6, 0.3], requires_grad=True)
    both = TaskSensitivityAlignment(mode="bidirectional")(p, torch.sigmoid(q_logits))
    q = torch.sigmoid(q_logits).detach()
    assert both.item() == pytest.approx((binary_kl(q, p) + binary_kl(p, q)).mean().item(), rel=1e-6)
    both.backward()
    assert q_logits.grad.abs().sum() > 0 and p.grad.abs().sum() > 0
    assert TaskSensitivityAlignment(mode="off")(p, q).item() == 0.0


def test_laid_config_defaults_are_the_papers():
    laid = get_ps_cfg().PS.LAID
    assert (laid.CAIM.LOOSE_FACTOR, laid.CAIM.IOU_GATE, laid.CAIM.MATCHING) == (0.95, 0.7, "jv")
    assert (laid.DSCL.GROUP_IOU, laid.DSCL.MARGIN_SOURCE, laid.DSCL.MARGIN_TARGET) == (0.3, 0.5, 0.7)
    assert (laid.TSA.MODE, laid.TSA.DETECTOR) == ("rpn_from_reid", "rpn")
    cfg = get_ps_cfg()
    assert CostAwareInstanceMatching(cfg).candidate_thresh == pytest.approx(0.95 * 0.98)
    assert IntraImageLoss(cfg).margins == {"source": 0.5, "target": 0.7}
    assert TaskSensitivityAlignment(cfg).mode == "rpn_from_reid"


@pytest.mark.parametrize(
    "key, value, build",
    [
        ("CAIM.MOMENTUM", 1.2, CostAwareInstanceMatching),
        ("DSCL.GROUP_IOU", -0.1, IntraImageLoss),
        ("DSCL.MARGIN_TARGET", 1.5, IntraImageLoss),
        ("CAIM.MATCHING", "hungarian", CostAwareInstanceMatching),
        ("TSA.MODE", "both", TaskSensitivityAlignment),
        ("TSA.DETECTOR", "roi", TaskSensitivityAlignment),
    ],
)
def test_bad_laid_keys_name_the_key(key, value, build):
    cfg = get_ps_cfg()
    cfg.merge_from_list([f"PS.LAID.{key}", value])
    with pytest.raises(ValueError, match=f"PS.LAID.{key}"):
        build(cfg)


def test_an_image_without_detections_empties_its_cache():
    cache, source = caim().update(history(strip((0, 10))), torch.zeros(0, 4), torch.zeros(0, 4), torch.zeros(0))
    assert len(cache) == 0 and len(source) == 0 and cache.next_id == 1
