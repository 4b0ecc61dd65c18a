"""PSDiff set matching (scipy Hungarian vs brute force) and the eq. 13-14 losses."""
import itertools

import pytest
import torch
from torchvision.ops import box_iou

from ps_plugin.modeling.psdiff.losses import PSDiffCriterion
from ps_plugin.modeling.psdiff.matcher import DynamicKMatcher, PSDiffMatcher, center_prior, hungarian_match

WEIGHTS = {"cls": 2.0, "l1": 5.0, "giou": 2.0, "reid": 5.0}


def _brute_force_cost(cost):
    """Minimum total cost over all injective assignments of the smaller side."""
    n, m = cost.shape
    if n >= m:
        return min(sum(cost[p[j], j] for j in range(m)) for p in itertools.permutations(range(n), m))
    return min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))


@pytest.mark.parametrize("shape", [(4, 4), (6, 3), (3, 5), (1, 1), (7, 2)])
def test_hungarian_matches_brute_force(shape):
    for seed in range(5):
        cost = torch.rand(*shape, generator=torch.Generator().manual_seed(seed))
        rows, cols = hungarian_match(cost)
        assert len(rows) == min(shape) and len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert cost[rows, cols].sum().item() == pytest.approx(_brute_force_cost(cost).item(), abs=1e-6)


def _target():
    boxes = torch.tensor([[10.0, 10.0, 30.0, 50.0], [50.0, 5.0, 80.0, 60.0]])
    return {"boxes": boxes, "embeddings": torch.eye(4)[:2], "whwh": torch.tensor([100.0, 80.0, 100.0, 80.0])}


def _outputs(target, perm, num=5):
    """Predictions with the GTs placed at rows `perm` (confident) and junk elsewhere."""
    boxes = torch.tensor([[0.0, 0.0, 5.0, 5.0]]).repeat(num, 1)
    embeddings = -torch.ones(num, 4) / 2
    logits = torch.full((num, 1), -4.0)
    for gt, row in enumerate(perm):
        boxes[row], embeddings[row], logits[row] = target["boxes"][gt], target["embeddings"][gt], 4.0
    return {"pred_logits": logits[None], "pred_boxes": boxes[None], "pred_embeddings": embeddings[None]}


def test_matcher_finds_the_predictions_equal_to_ground_truth():
    target = _target()
    (rows, cols), = PSDiffMatcher()(_outputs(target, perm=[3, 1]), [target])
    assert dict(zip(cols.tolist(), rows.tolist())) == {0: 3, 1: 1}


def test_reid_term_decides_between_identical_boxes():
    target = _target()
    outputs = _outputs(target, perm=[0, 1], num=2)
    outputs["pred_boxes"][0, 1] = target["boxes"][0]  # both predictions sit on GT 0's box ...
    outputs["pred_embeddings"][0] = torch.stack([target["embeddings"][1], target["embeddings"][0]])
    target = dict(target, boxes=target["boxes"][:1], embeddings=target["embeddings"][:1])
    (rows, _), = PSDiffMatcher()(outputs, [target])  # ... only the embedding tells GT 0 apart
    assert rows.tolist() == [1]
    (rows, _), = PSDiffMatcher(reid_weight=0.0)(outputs, [target])
    assert rows.tolist() == [0]


def test_perfect_predictions_have_zero_box_and_reid_losses():
    target = _target()
    losses = PSDiffCriterion(PSDiffMatcher(), WEIGHTS)([_outputs(target, perm=[2, 0])], [target])
    assert set(losses) == {"loss_cls", "loss_l1", "loss_giou", "loss_reid"}
    for name in ("loss_l1", "loss_giou", "loss_reid"):
        assert losses[name].item() == pytest.approx(0.0, abs=1e-5), name
    assert 0 < losses["loss_cls"].item() < 0.01


def test_reid_loss_is_weighted_sum_of_l2_distances_over_gt():
    target = _target()
    outputs = _outputs(target, perm=[0, 1], num=2)
    outputs["pred_embeddings"] = outputs["pred_embeddings"] + torch.tensor([0.0, 0.0, 0.3, 0.4])
    criterion = PSDiffCriterion(PSDiffMatcher(reid_weight=0.0), WEIGHTS)
    losses = criterion([outputs], [target])
    # Each matched pair is 0.5 away (‖(0, 0, 0.3, 0.4)‖); mean over 2 GTs, × λ_reid = 5.
    assert losses["loss_reid"].item() == pytest.approx(5.0 * 0.5)


def test_normalized_reid_loss_is_the_chord_between_unit_vectors_and_ignores_the_norm():
    target = _target()
    outputs = _outputs(target, perm=[0, 1], num=2)
    # Prediction 0 points 60° away from e0^0 (cos 0.5); prediction 1 is e0^1 scaled by 7.
    outputs["pred_embeddings"] = torch.tensor([[[0.5, 3**0.5 / 2, 0.0, 0.0], [0.0, 7.0, 0.0, 0.0]]])
    criterion = PSDiffCriterion(PSDiffMatcher(reid_weight=0.0), WEIGHTS, reid_loss="normalized_l2")
    # √(2 − 2·0.5) = 1 and 0; mean over 2 GTs, × λ_reid = 5.
    assert criterion([outputs], [target])["loss_reid"].item() == pytest.approx(5.0 * 0.5)
    paper = PSDiffCriterion(PSDiffMatcher(reid_weight=0.0), WEIGHTS)([outputs], [target])["loss_reid"]
    assert paper.item() == pytest.approx(5.0 * (1.0 + 6.0) / 2)


def test_normalized_reid_loss_matches_on_the_direction_of_the_embedding():
    target = _target()
    outputs = _outputs(target, perm=[0, 1], num=2)
    outputs["pred_boxes"][0, 1] = target["boxes"][0]  # both predictions on GT 0's box
    # Row 0 has GT 0's direction at norm 3 (raw distance 2); row 1 is 1.2 away in both metrics.
    outputs["pred_embeddings"] = torch.tensor([[[3.0, 0.0, 0.0, 0.0], [0.28, 0.96, 0.0, 0.0]]])
    target = dict(target, boxes=target["boxes"][:1], embeddings=target["embeddings"][:1])
    (rows, _), = PSDiffCriterion(PSDiffMatcher(), WEIGHTS).matcher(outputs, [target])
    assert rows.tolist() == [1]
    criterion = PSDiffCriterion(PSDiffMatcher(), WEIGHTS, reid_loss="normalized_l2")
    assert criterion([outputs], [target])["loss_reid"].item() == pytest.approx(0.0, abs=1e-5)


def test_unknown_reid_loss_is_rejected():
    with pytest.raises(ValueError, match="REID_LOSS"):
        PSDiffCriterion(PSDiffMatcher(), WEIGHTS, reid_loss="cosine")


def test_deep_supervision_names_earlier_stages_and_handles_empty_images():
    target = _target()
    empty = {"boxes": torch.zeros(0, 4), "embeddings": torch.zeros(0, 4), "whwh": target["whwh"]}
    one = _outputs(target, perm=[0, 1])
    two_images = {k: torch.cat([v, v]) for k, v in one.items()}
    losses = PSDiffCriterion(PSDiffMatcher(), WEIGHTS)([two_images, two_images], [target, empty])
    assert {"loss_cls_stage0", "loss_reid_stage0", "loss_cls", "loss_reid"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())


def _boxes(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_dynamic_k_takes_k_from_the_summed_top_ious():
    gt = _boxes([[10, 10, 30, 50], [60, 10, 80, 50]])
    preds = _boxes([
        [10, 10, 30, 50],   # IoU 1 with GT 0
        [10, 12, 30, 50],   # IoU 0.95 with GT 0
        [11, 10, 30, 49],   # IoU 0.93 with GT 0
        [60, 10, 80, 50],   # IoU 1 with GT 1
        [90, 90, 95, 95],   # junk
        [0, 60, 5, 70],     # junk
    ])
    cost = torch.zeros(6, 2)
    cost[:, 0] = torch.tensor([0.0, 0.1, 0.2, 5.0, 5.0, 5.0])
    cost[:, 1] = torch.tensor([5.0, 5.0, 5.0, 0.0, 5.0, 5.0])
    rows, cols = DynamicKMatcher().assign(cost, preds, gt)
    # GT 0: top IoUs 1 + 0.95 + 0.93 = 2.88 -> k = 2 (the two cheapest); GT 1: 1.0 -> k = 1
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 0), (1, 0), (3, 1)]


def test_dynamic_k_resolves_conflicts_and_gives_every_gt_a_prediction():
    gt = _boxes([[10, 10, 30, 50], [12, 10, 32, 50]])
    preds = _boxes([[11, 10, 31, 50], [40, 40, 60, 70], [0, 0, 4, 4]])
    cost = torch.tensor([[0.0, 1.0], [3.0, 2.0], [9.0, 9.0]])
    rows, cols = DynamicKMatcher().assign(cost, preds, gt)
    # prediction 0 is the cheapest for both GTs: GT 0 keeps it (cost 0 < 1); GT 1 takes the cheapest free one
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 0), (1, 1)]


def test_dynamic_k_invariants_on_random_boxes():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        xy = torch.rand(30, 2, generator=generator) * 80
        preds = torch.cat([xy, xy + 5 + torch.rand(30, 2, generator=generator) * 30], dim=1)
        gt = preds[torch.randperm(30, generator=generator)[:4]] + torch.rand(4, 4, generator=generator) * 4
        cost = torch.rand(30, 4, generator=generator)
        rows, cols = DynamicKMatcher().assign(cost, preds, gt)
        assert len(set(rows.tolist())) == len(rows)             # a prediction matches at most one GT
        assert set(cols.tolist()) == {0, 1, 2, 3}                # every GT is matched
        ks = box_iou(preds, gt).topk(5, dim=0).values.sum(dim=0).int().clamp(min=1)
        assert all((cols == j).sum() <= ks[j] for j in range(4))


def test_dynamic_k_criterion_supervises_every_matched_prediction():
    target = _target()
    outputs = _outputs(target, perm=[0, 1])
    outputs["pred_boxes"][0, 2] = target["boxes"][0]
    outputs["pred_embeddings"][0, 2] = target["embeddings"][0]
    outputs["pred_logits"][0, 2] = 4.0
    matcher = DynamicKMatcher()
    (rows, cols), = matcher(outputs, [target])
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 0), (1, 1), (2, 0)]
    losses = PSDiffCriterion(matcher, WEIGHTS)([outputs], [target])
    assert losses["loss_reid"].item() == pytest.approx(0.0, abs=1e-5)
    one_to_one = PSDiffCriterion(PSDiffMatcher(), WEIGHTS)([outputs], [target])
    assert one_to_one["loss_cls"] > losses["loss_cls"]  # the duplicate is a negative for the Hungarian matcher



def test_dynamic_k_outside_penalty_is_per_prediction():
    """DiffusionDet adds 10,000 only for a prediction outside the box and centre region of every GT.

    GT 0 = (10, 10, 30, 50): centre region (−30, −70)–(70, 130) at radius 2.5; GT 1 = (300, 10, 320, 50).
    Prediction 0 (centre (65, 30)) lies in GT 0's centre region only; prediction 1 lies nowhere;
    predictions 2 and 3 sit on GT 1 and GT 0.
    """
    gt = _boxes([[10, 10, 30, 50], [300, 10, 320, 50]])
    preds = _boxes([[60, 20, 70, 40], [500, 500, 510, 510], [300, 10, 320, 50], [10, 10, 30, 50]])
    both, foreground = center_prior(preds, gt)
    assert both.tolist() == [[False, False], [False, False], [False, True], [True, False]]
    assert foreground.tolist() == [True, False, True, True]
    # Base costs: prediction 0 is the cheapest for GT 1 (0 + 100 for being outside GT 1's prior,
    # against 200 for prediction 2); prediction 1 (−5,000 + 10,100) stays out. A pair-wise 10,000
    # would give prediction 0 10,100 and GT 1 would take prediction 2.
    cost = torch.tensor([[50.0, 0.0], [50.0, -5000.0], [50.0, 200.0], [0.0, 50.0]])
    rows, cols = DynamicKMatcher().assign(cost, preds, gt)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (3, 0)]
