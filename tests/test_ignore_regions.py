"""Ignore regions (CrowdHuman): IoA by hand, RPN anchor labels, ROI proposal sampling, the mapper's
IGNORE_BOXES, and inputs without regions training exactly as before."""
import numpy as np
import pytest
import torch
from detectron2.modeling import GeneralizedRCNN
from detectron2.modeling.matcher import Matcher
from detectron2.structures import Boxes, Instances, pairwise_iou
from detectron2.utils.events import EventStorage

from common import small_input_cfg
from ps_plugin.data.datasets.crowdhuman import load_crowdhuman
from ps_plugin.data.identities import hide_annotations
from ps_plugin.data.mapper import PersonSearchDatasetMapper
from ps_plugin.modeling.common.ignore_regions import (
    drop_ignored_proposals,
    ignore_boxes_of,
    ignore_unmatched,
    inside_ignore_regions,
)
from ps_plugin.structures import IGNORE_BOXES
from test_datasets_pretrain import write_crowdhuman
from test_mapper import scene_record
from test_model_baseline import H, W, build, image, person_instances, tiny_model_cfg

REGION = [[0.0, 0.0, 64.0, 96.0]]  # the left half of a 96 x 128 input


def boxes(rows):
    return Boxes(torch.tensor(rows, dtype=torch.float32).reshape(-1, 4))


def test_inside_means_ioa_of_the_box_above_the_threshold():
    region = boxes([[0, 0, 10, 10]])
    # IoA 1 (inside), 0.5 (half in), 0 (outside), 1 (inside a large region: a small box), zero area.
    candidates = boxes([[2, 2, 6, 6], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10], [3, 3, 3, 8]])
    assert inside_ignore_regions(candidates, region, 0.7).tolist() == [True, False, False, True, False]
    assert inside_ignore_regions(candidates, region, 0.4).tolist() == [True, True, False, True, False]
    assert inside_ignore_regions(candidates, boxes([]), 0.7).tolist() == [False] * 5


def test_only_negatives_inside_a_region_become_ignored():
    labels = torch.tensor([1, 0, 0, -1])
    candidates = boxes([[1, 1, 9, 9], [2, 2, 6, 6], [20, 20, 30, 30], [0, 0, 5, 5]])
    out = ignore_unmatched(labels, candidates, boxes([[0, 0, 10, 10]]), 0.7)
    assert out.tolist() == [1, -1, 0, -1] and labels.tolist() == [1, 0, 0, -1]


def test_proposals_inside_a_region_and_matched_to_no_person_are_not_sampled():
    matcher = Matcher([0.5], [0, 1], allow_low_quality_matches=False)
    targets = person_instances([[2, 2, 8, 9]], [0])
    proposals = Instances((H, W), proposal_boxes=boxes([[2, 2, 8, 8], [0, 0, 4, 4], [40, 40, 60, 60]]))
    kept, unchanged = drop_ignored_proposals(
        [proposals, proposals], [targets, targets], [boxes([[0, 0, 10, 10]]), boxes([])], matcher, 0.7
    )
    # The person's proposal stays although inside; the unmatched one inside goes; the outside one stays.
    assert kept.proposal_boxes.tensor.tolist() == [[2, 2, 8, 8], [40, 40, 60, 60]]
    assert unchanged is proposals


def rpn_cfg(name="PersonSearchRPN"):
    cfg = tiny_model_cfg()
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = name
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 100000  # every labelled anchor is sampled: labels are deterministic
    return cfg


def anchor_labels(rpn, features, targets, regions):
    rpn._ignore_boxes = regions
    try:
        anchors = rpn.anchor_generator([features[f] for f in rpn.in_features])
        labels, _ = rpn.label_and_sample_anchors(anchors, targets)
    finally:
        rpn._ignore_boxes = None
    return Boxes.cat(anchors), labels


def test_rpn_anchors_inside_a_region_are_not_negatives_and_the_rest_are_unchanged():
    model = build(rpn_cfg())
    features = model.backbone(model.preprocess_image([{"image": image(1)}, {"image": image(2)}]).tensor)
    targets = [person_instances([[80, 10, 110, 80]], [0]), person_instances([[10, 10, 40, 80]], [1])]
    anchors, plain = anchor_labels(model.proposal_generator, features, targets, None)
    _, ignored = anchor_labels(model.proposal_generator, features, targets, [boxes(REGION), boxes([])])
    inside = inside_ignore_regions(anchors, boxes(REGION), model.proposal_generator.ignore_ioa_thresh)
    assert inside.any() and (plain[0][inside] == 0).any()
    assert not (ignored[0][inside] == 0).any()                                # not a negative inside
    assert torch.equal(ignored[0][~inside], plain[0][~inside])               # outside: as before
    assert (ignored[0][~inside] == 0).any()                                  # ... negatives included
    assert torch.equal(ignored[1], plain[1])                                 # an image without regions
    # The person inside the second image's region keeps its positives.
    _, second = anchor_labels(model.proposal_generator, features, targets, [boxes([]), boxes(REGION)])
    assert (plain[1] == 1).any() and torch.equal(second[1] == 1, plain[1] == 1)


def scene_input(seed, people, regions=None):
    x = {"image": image(seed), "instances": person_instances(people, list(range(len(people))))}
    if regions is not None:
        x[IGNORE_BOXES] = torch.tensor(regions, dtype=torch.float32).reshape(-1, 4)
    return x


def storage_counts(model, batch, seed=0):
    torch.manual_seed(seed)
    model.train()
    with EventStorage() as storage:
        losses = model(batch)
        sum(losses.values()).backward()
        return losses, {k: storage.latest()[k][0] for k in ("rpn/num_neg_anchors", "roi_head/num_bg_samples")}


def test_inputs_without_regions_train_exactly_as_detectron2_s_forward():
    batch = [scene_input(1, [[10, 10, 40, 80]]), scene_input(2, [])]
    ours = storage_counts(build(rpn_cfg()), batch)[0]
    reference_model = build(rpn_cfg()).train()  # a fresh copy: training steps update the OIM tables
    torch.manual_seed(0)
    with EventStorage():
        reference = GeneralizedRCNN.forward(reference_model, batch)
    assert list(ours) == list(reference) and all(torch.equal(ours[k], reference[k]) for k in ours)
    assert ignore_boxes_of(batch, "cpu") is None and ignore_boxes_of([dict(batch[0], **{IGNORE_BOXES: torch.zeros(0, 4)})], "cpu") is None


def test_a_region_removes_negatives_from_both_stages():
    cfg = rpn_cfg()
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 1000  # every proposal sampled
    people = [[80, 10, 110, 80]]
    _, plain = storage_counts(build(cfg), [scene_input(1, people)])
    losses, ignored = storage_counts(build(cfg), [scene_input(1, people, REGION)])
    assert all(torch.isfinite(v) for v in losses.values())
    assert ignored["rpn/num_neg_anchors"] < plain["rpn/num_neg_anchors"]
    assert ignored["roi_head/num_bg_samples"] < plain["roi_head/num_bg_samples"]


def test_regions_with_detectron2_s_plain_rpn_are_an_error_naming_the_key():
    model = build(rpn_cfg(name="RPN"))
    with pytest.raises(ValueError, match="PersonSearchRPN"):
        storage_counts(model, [scene_input(1, [[80, 10, 110, 80]], REGION)])


def test_the_mapper_moves_regions_with_the_image_and_only_when_asked(tmp_path):
    regions = np.array([[10, 20, 50, 100], [330, 0, 400, 50], [0, 230, 320, 240]], dtype=np.float32)
    record = scene_record(tmp_path, ignore_regions=regions)
    cfg = small_input_cfg(TRAIN_AUG="resize", FLIP_PROB=1.0)
    view = PersonSearchDatasetMapper(cfg, is_train=True)(record)
    # 240 x 320 -> 200 x 267, mirrored; region 2 lies right of the image (clipped to nothing).
    sx, sy = 267 / 320, 200 / 240
    expected = [[267 - 50 * sx, 20 * sy, 267 - 10 * sx, 100 * sy], [0, 230 * sy, 267, 200]]
    np.testing.assert_allclose(view[IGNORE_BOXES].numpy(), expected, atol=1e-3)
    assert view[IGNORE_BOXES].dtype == torch.float32
    cfg.PS.DATA.IGNORE_REGIONS = False
    assert IGNORE_BOXES not in PersonSearchDatasetMapper(cfg, is_train=True)(record)
    assert IGNORE_BOXES not in PersonSearchDatasetMapper(small_input_cfg(), is_train=True)(scene_record(tmp_path))
    assert IGNORE_BOXES not in PersonSearchDatasetMapper(small_input_cfg(), is_train=False)(record)


def test_hidden_target_records_lose_their_regions():
    record = {"annotations": [{"bbox": [0, 0, 1, 1]}], "ignore_regions": np.zeros((1, 4), np.float32)}
    assert "ignore_regions" not in hide_annotations([record], "target")[0]
    assert "ignore_regions" in hide_annotations([record], "source")[0]


def test_crowdhuman_records_train_through_the_mapper_with_their_regions(tmp_path):
    """Loader -> mapper -> baseline training step: the crowd mask and the ignored person arrive as
    IGNORE_BOXES in the resized image, and the step's losses are finite."""
    base = write_crowdhuman(tmp_path / "crowdhuman")
    records = load_crowdhuman(str(base / "annotation_train.odgt"), str(base / "Images"))
    mapper = PersonSearchDatasetMapper(small_input_cfg(TRAIN_AUG="resize", FLIP_PROB=0.0), is_train=True)
    batch = [mapper(r) for r in records[:2]]
    scale = 200 / 80  # 100 x 80 images resized to a short side of 200
    np.testing.assert_allclose(batch[0][IGNORE_BOXES].numpy(), np.array([[5, 5, 15, 15], [50, 50, 70, 70]]) * scale, atol=1e-3)
    assert batch[1][IGNORE_BOXES].shape == (0, 4)  # a record without regions: an empty list, no effect
    model = build(rpn_cfg())
    losses, _ = storage_counts(model, [{**b, "image": b["image"].flip(0)} for b in batch])  # RGB -> the model's BGR
    assert all(torch.isfinite(v) for v in losses.values())
