"""LAID end to end (tiny SynthPS, CPU): the domain-pair stream, hidden target annotations, the proxy
memory, stage 1 (CAIM, hard negatives, clustering, pseudo-labelled records), exact resume, 2 gloo
processes, and the errors of bad input. The parts alone: tests/test_laid_parts.py."""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.data import DatasetCatalog
from detectron2.engine import HookBase
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils import comm
from detectron2.utils.events import EventStorage

from laid_fixtures import laid_cfg, register_shuffled_target
from ps_plugin.data.samplers import domain_pair_stream
from ps_plugin.engine import launch
from ps_plugin.engine.checkpointer import PersonSearchCheckpointer
from ps_plugin.engine.domain_adaptation import TargetPseudoLabelHook
from ps_plugin.modeling.laid import ProxyMemory
from ps_plugin.modeling.laid.caim import TrackCache
from ps_plugin.modeling.laid.tsa import index_proposals
from ps_plugin.modeling.laid.pseudo_labels import (
    ImageDetections,
    cluster_tracks,
    hard_negatives,
    pseudo_annotations,
    pseudo_identities,
)
from test_resume import InterruptAfter, Interrupted
from train_fixtures import build_trainer, register_tiny, sample_in_order, tiny_synthps, unwrap

PREFIX = "laid"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tiny_synthps(tmp_path_factory.mktemp("synthps"))


def hook_of(trainer):
    return next(h for h in trainer._hooks if isinstance(h, TargetPseudoLabelHook))


def laid_state(trainer):
    """The model's weights and memory, and the target records' pseudo annotations."""
    model = unwrap(trainer.model)
    hook = hook_of(trainer)
    return {
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "annotations": [trainer.train_records[i]["annotations"] for i in hook.target_index],
        "epoch": hook.epoch,
    }


def assert_same_state(a, b, atol=0.0):
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.allclose(a["model"][key].float(), b["model"][key].float(), atol=atol), key
    assert a["annotations"] == b["annotations"] and a["epoch"] == b["epoch"]


# ---- the domain-pair stream ---------------------------------------------------------------------
def records(domain, count):
    return [{"image_id": f"{domain}{i}", "domain": domain, "annotations": []} for i in range(count)]


def test_domain_pair_stream_gives_each_batch_its_source_and_target_images():
    stream = domain_pair_stream(records("source", 5) + records("target", 3), (1, 1), images_per_batch=4, seed=1)
    for batch in range(6):
        items = [stream[p] for p in range(4 * batch, 4 * batch + 4)]
        assert sorted(x["dataset_id"] for x in items) == [0, 0, 1, 1]
        assert all(x["dataset_id"] == (x["domain"] == "target") for x in items)
    # the target stream's epoch e is a permutation of the 3 target images
    targets = [stream[p]["image_id"] for p in range(24) if stream[p]["dataset_id"] == 1]
    for epoch in range(len(targets) // 3):
        assert sorted(targets[3 * epoch : 3 * epoch + 3]) == ["target0", "target1", "target2"]
    # a pure function of the position: a new stream (a resume, another rank) maps positions alike
    again = domain_pair_stream(records("source", 5) + records("target", 3), (1, 1), images_per_batch=4, seed=1)
    assert [again[p]["image_id"] for p in range(24)] == [stream[p]["image_id"] for p in range(24)]


def test_domain_pair_stream_names_what_is_missing():
    with pytest.raises(ValueError, match="needs target images.*PS.DATA.TRAIN_DOMAINS"):
        domain_pair_stream(records("source", 2), (1, 1), images_per_batch=2)
    with pytest.raises(ValueError, match="needs source images"):
        domain_pair_stream(records("target", 2), (1, 1), images_per_batch=2)
    with pytest.raises(ValueError, match="PS.DATA.DOMAIN_RATIOS.*multiple of 2"):
        domain_pair_stream(records("source", 2) + records("target", 2), (1, 1), images_per_batch=3)


def test_bad_domain_tags_are_named(root, tmp_path):
    for tags, message in (((("source",)), "one tag per DATASETS.TRAIN entry"), (("source", "tgt"), "unknown tags")):
        cfg = laid_cfg(root, PREFIX, tmp_path)
        cfg.PS.DATA.TRAIN_DOMAINS = tags
        with pytest.raises(ValueError, match=message):
            build_trainer(cfg)
    cfg = laid_cfg(root, PREFIX, tmp_path)
    cfg.PS.DATA.TRAIN_DOMAINS = ("source", "source")
    with pytest.raises(ValueError, match="target"):
        build_trainer(cfg)
    empty = "laid_empty_target"
    if empty not in DatasetCatalog.list():
        DatasetCatalog.register(empty, list)
    with pytest.raises(AssertionError, match=empty):
        build_trainer(laid_cfg(root, PREFIX, tmp_path, target=empty))
    cfg = laid_cfg(root, PREFIX, tmp_path)
    cfg.PS.REID.NAE = False
    with pytest.raises(ValueError, match="PS.REID.NAE"):
        build_model(cfg)


# ---- training ------------------------------------------------------------------------------------
def test_target_annotations_never_reach_training(root, tmp_path):
    """Shuffling the target set's boxes between images and renaming its people changes nothing."""
    runs = []
    for target in (f"{PREFIX}_gallery", register_shuffled_target(PREFIX)):
        trainer = build_trainer(laid_cfg(root, PREFIX, tmp_path / target, target=target, MAX_ITER=5))
        trainer.train()
        runs.append(laid_state(trainer))
        memory = unwrap(trainer.model).memory
        assert int(memory.num_target) > 0 and hook_of(trainer).epoch == 1  # stage 1 ran at iterations 0 and 4
    assert_same_state(*runs)
    pseudo_rows = {a["person_id"] for image in runs[0]["annotations"] for a in image}
    assert min(pseudo_rows) >= int(memory.num_source)  # target boxes learn towards target rows only


def test_resume_is_exact_across_a_stage_one(root, tmp_path):
    """Interrupted after iteration 2 (checkpoint), resumed: stage 1 at iteration 4 continues CAIM from the
    checkpointed tracks, and the end state equals the uninterrupted run's."""
    uninterrupted = build_trainer(laid_cfg(root, PREFIX, tmp_path / "full", MAX_ITER=6))
    uninterrupted.train()
    cfg = laid_cfg(root, PREFIX, tmp_path / "parts", MAX_ITER=6, CHECKPOINT_PERIOD=3)
    first = build_trainer(cfg)
    first.register_hooks([InterruptAfter(2)])
    with pytest.raises(Interrupted):
        first.train()
    resumed = build_trainer(cfg, resume=True)
    assert resumed.start_iter == 3 and hook_of(resumed).epoch == 0
    resumed.train()
    assert_same_state(laid_state(resumed), laid_state(uninterrupted))


def test_losses_per_domain_before_and_after_pseudo_labels(root, tmp_path):
    cfg = laid_cfg(root, PREFIX, tmp_path)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.memory.set_source(F.normalize(torch.randn(3, cfg.PS.REID.EMBED_DIM), dim=1))
    source, target = tiny_input(0, [[5, 5, 30, 60]], pid=1), tiny_input(1, [])
    with EventStorage():
        before = model([source, target])
        assert {k for k in before if k.endswith("_t")} == {"loss_da_img_t", "loss_da_ins_t", "loss_da_cst_t"}
        model.memory.set_target(torch.randn(2, cfg.PS.REID.EMBED_DIM), torch.zeros(0, cfg.PS.REID.EMBED_DIM))
        after = model([source, tiny_input(1, [[40, 4, 70, 60]], pid=int(model.memory.target_row(torch.tensor(1))))])
    assert {k[:-2] for k in after if k.endswith("_t")} == {k for k in after if not k.endswith("_t")}
    assert all(torch.isfinite(v) for v in after.values())
    with pytest.raises(ValueError, match="PS.DATA.TRAIN_DOMAINS"):
        model([{k: v for k, v in source.items() if k != "dataset_id"}])


def tiny_input(domain_id, boxes, pid=-1, height=64, width=96):
    instances = Instances((height, width), gt_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)))
    instances.gt_classes = torch.zeros(len(instances), dtype=torch.long)
    instances.gt_pids = torch.full((len(instances),), pid, dtype=torch.long)
    return {"image": torch.randint(0, 255, (3, height, width), dtype=torch.uint8), "instances": instances,
            "dataset_id": domain_id}


# ---- stage 1 on given detections ----------------------------------------------------------------
def test_hard_negatives_score_between_the_bounds_away_from_kept_boxes():
    boxes = torch.tensor([[0, 0, 10, 20], [1, 0, 11, 20], [50, 0, 60, 20], [80, 0, 90, 20], [0, 30, 10, 50]], dtype=torch.float)
    detections = ImageDetections(boxes, torch.tensor([0.99, 0.9, 0.85, 0.5, 0.97]), torch.eye(5))
    negatives = hard_negatives(detections, boxes[:1], min_score=0.8, max_score=0.98, max_iou=0.5)
    # 1 overlaps the kept box (IoU 0.82), 3 scores under 0.8, 0 is kept itself: 2 and 4 remain
    assert torch.equal(negatives, torch.eye(5)[[2, 4]])


def caches_of(features_per_image):
    return [TrackCache(torch.tensor([[10.0 * k, 0, 10.0 * k + 8, 20] for k in range(len(f))]).reshape(-1, 4),
                       torch.as_tensor(f, dtype=torch.float), torch.arange(len(f)), len(f))
            for f in features_per_image]


def test_pseudo_identities_cluster_across_images_and_outliers_get_their_own_rows():
    rng = np.random.default_rng(0)
    people = np.eye(4)[:2] * 5
    caches = caches_of([people + rng.normal(0, 0.05, (2, 4)) for _ in range(4)] + [[[0, 0, 0, 1.0]]])
    labels, num_clusters = cluster_tracks(caches, eps=0.5, min_samples=2, k1=4, k2=2)
    identities = pseudo_identities(caches, labels, num_clusters)
    assert num_clusters == 2 and identities.num_outliers == 1
    first = [int(image[0]) for image in identities.labels[:4]]
    assert len(set(first)) == 1 and all(int(image[1]) != first[0] for image in identities.labels[:4])
    assert int(identities.labels[4][0]) == 2  # the outlier: a label of its own after the clusters
    assert torch.allclose(identities.centroids.norm(dim=1), torch.ones(3))
    annotations = pseudo_annotations(caches[4], identities.labels[4], first_row=7)
    assert annotations[0]["person_id"] == 9 and annotations[0]["bbox"] == [0.0, 0.0, 8.0, 20.0]


def test_all_outliers_and_images_without_tracks():
    caches = caches_of([np.eye(4)[:2], np.zeros((0, 4)), np.eye(4)[2:]])
    labels, num_clusters = cluster_tracks(caches, eps=0.5, min_samples=5, k1=4, k2=2)  # 4 tracks: no core point
    identities = pseudo_identities(caches, labels, num_clusters)
    assert num_clusters == 0 and identities.num_outliers == 4 and len(identities.labels[1]) == 0
    assert sorted(torch.cat(identities.labels).tolist()) == [0, 1, 2, 3]
    empty = cluster_tracks(caches_of([np.zeros((0, 4))]), eps=0.5, min_samples=4, k1=4, k2=2)
    assert len(empty[0]) == 0 and empty[1] == 0


def test_a_target_image_without_detection_keeps_no_box_and_trains(root, tmp_path):
    """A detector that finds nothing in one target image: that image keeps no pseudo box, the others train."""
    trainer = build_trainer(laid_cfg(root, PREFIX, tmp_path, MAX_ITER=2))
    hook = hook_of(trainer)
    detect = hook.detect_targets

    def drop_first(model):
        detections = detect(model)
        empty = detections[0]
        detections[0] = ImageDetections(empty.boxes[:0], empty.scores[:0], empty.features[:0])
        return detections

    hook.detect_targets = drop_first
    trainer.train()
    annotations = laid_state(trainer)["annotations"]
    assert annotations[0] == [] and all(annotations[1:])
    assert trainer.storage.latest()["laid/images_without_detection"][0] == 1


# ---- the proxy memory ----------------------------------------------------------------------------
def test_proxy_memory_loss_is_eq_4_and_rows_follow_source_target_negatives():
    memory = ProxyMemory(dim=3, momentum=0.2, temperature=0.5)
    memory.set_source(torch.tensor([[1.0, 0, 0], [0, 2.0, 0]]))
    memory.set_target(torch.tensor([[0, 0, 3.0]]), torch.tensor([[1.0, 1.0, 0]]))
    assert memory.proxies.shape == (4, 3) and int(memory.num_source) == 2 and int(memory.num_target) == 1
    assert int(memory.target_row(torch.tensor(0))) == 2
    x = F.normalize(torch.tensor([[1.0, 0.5, 0.0]]), dim=1)
    logits = (x @ memory.proxies.t()) / 0.5
    assert torch.allclose(memory.loss(x, torch.tensor([0])), -torch.log_softmax(logits, dim=1)[0, 0])
    memory.update(x, torch.tensor([2]))
    assert torch.allclose(memory.proxies[2], F.normalize(0.2 * torch.tensor([0, 0, 1.0]) + 0.8 * x[0], dim=0))
    memory.set_target(torch.zeros(0, 3), torch.zeros(0, 3))
    assert memory.proxies.shape == (2, 3)  # a new stage 1 keeps the source rows only


def test_checkpoint_with_another_number_of_proxies_loads(root, tmp_path):
    cfg = laid_cfg(root, PREFIX, tmp_path)
    torch.manual_seed(0)
    trained = build_model(cfg)
    trained.memory.set_source(torch.randn(5, cfg.PS.REID.EMBED_DIM))
    trained.memory.set_target(torch.randn(3, cfg.PS.REID.EMBED_DIM), torch.randn(2, cfg.PS.REID.EMBED_DIM))
    PersonSearchCheckpointer(trained, str(tmp_path)).save("laid")
    fresh = build_model(cfg)
    PersonSearchCheckpointer(fresh, str(tmp_path)).load(str(tmp_path / "laid.pth"))
    assert torch.equal(fresh.memory.proxies, trained.memory.proxies)
    assert int(fresh.memory.num_target) == 3


# ---- several processes ---------------------------------------------------------------------------
class RecordStageOneMemory(HookBase):
    """The proxy memory right after stage 1 of iteration 0 (before any online update): `trainer.stage_one_memory`."""

    def before_step(self):
        if self.trainer.iter == 0:
            self.trainer.stage_one_memory = unwrap(self.trainer.model).memory.proxies.clone()


def train_recording_memory(cfg):
    trainer = build_trainer(cfg)
    trainer.register_hooks([RecordStageOneMemory()])
    trainer.train()
    return {**laid_state(trainer), "stage_one_memory": trainer.stage_one_memory}


def laid_ddp_main(cfg, root, state_dir):
    torch.set_num_threads(1)
    register_tiny(root, PREFIX)
    sample_in_order()
    torch.save(train_recording_memory(cfg), os.path.join(state_dir, f"rank{comm.get_rank()}.pt"))


@pytest.mark.slow
def test_two_gloo_processes_give_the_pseudo_labels_of_one(root, tmp_path):
    """Stage 1 with each rank detecting half of the target images: the same tracks, pseudo labels and
    proxies as one process (the online updates afterwards see other batch statistics, so only the ranks
    are compared after the step)."""
    state_dir = tmp_path / "states"
    state_dir.mkdir()
    cfg = laid_cfg(root, PREFIX, tmp_path / "ddp", IMS_PER_BATCH=4, MAX_ITER=1)
    launch(laid_ddp_main, 2, dist_url="auto", args=(cfg, str(root), str(state_dir)))
    ranks = [torch.load(state_dir / f"rank{r}.pt", weights_only=False) for r in range(2)]
    sample_in_order()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank: other thread counts change the boxes' last bits
    try:
        expected = train_recording_memory(laid_cfg(root, PREFIX, tmp_path / "single", IMS_PER_BATCH=4, MAX_ITER=1))
    finally:
        torch.set_num_threads(threads)
    assert_same_state(ranks[0], ranks[1])  # the ranks agree exactly
    assert torch.equal(ranks[0]["stage_one_memory"], ranks[1]["stage_one_memory"])
    assert ranks[0]["annotations"] == expected["annotations"] and any(expected["annotations"])
    assert torch.allclose(ranks[0]["stage_one_memory"], expected["stage_one_memory"], atol=1e-5)


def test_domain_specific_bn_normalises_each_domain_with_its_own_statistics(root, tmp_path):
    cfg = laid_cfg(root, PREFIX, tmp_path)
    cfg.PS.LAID.DSBN = True
    torch.manual_seed(0)
    model = build_model(cfg)
    bn = model.roi_heads.reid_branch.head.bn
    model.memory.set_source(F.normalize(torch.randn(3, cfg.PS.REID.EMBED_DIM), dim=1))
    with EventStorage():
        model([tiny_input(0, [[5, 5, 30, 60]], pid=1), tiny_input(1, [])])
    # the target forward had no pseudo labels: only the source BN saw a batch
    assert int(bn.source.num_batches_tracked) == 1 and int(bn.target.num_batches_tracked) == 0
    assert bn.domain == "target"  # inference normalises with the target's statistics
    cfg.PS.REID.HEAD_BN = False
    with pytest.raises(ValueError, match="PS.REID.HEAD_BN"):
        build_model(cfg)


def test_detection_scores_are_the_box_classifiers_or_the_nae_confidence(root, tmp_path):
    torch.manual_seed(0)
    model = build_model(laid_cfg(root, PREFIX, tmp_path)).eval()
    image = {"image": torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8)}
    with torch.no_grad():
        by_box = model([image])[0]["instances"]
        model.detection_score = "nae"
        by_nae = model([image])[0]["instances"]
        features = model.backbone(model.preprocess_image([image]).tensor)
        _, nae = model.roi_heads.embed_boxes(features, [by_nae.pred_boxes])
    assert torch.equal(by_box.pred_boxes.tensor, by_nae.pred_boxes.tensor) and len(by_box) > 0
    assert torch.allclose(by_nae.scores, nae, atol=1e-6) and not torch.allclose(by_box.scores, by_nae.scores)


# ---- TSA's P: the RPN objectness of the sampled proposals (or the box classifier) -----------------
def tsa_model(root, tmp_path, **tsa):
    cfg = laid_cfg(root, PREFIX, tmp_path)
    cfg.PS.LAID.TSA.update(**tsa)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.memory.set_source(F.normalize(torch.randn(3, cfg.PS.REID.EMBED_DIM), dim=1))
    return model


def gradient_norm(module):
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("mode", ["rpn_from_reid", "bidirectional"])
@pytest.mark.parametrize("detector", ["rpn", "box"])
def test_tsa_gradient_reaches_the_rpn_objectness_or_the_box_classifier(root, tmp_path, detector, mode):
    model = tsa_model(root, tmp_path, DETECTOR=detector, MODE=mode)
    with EventStorage():
        model([tiny_input(0, [[5, 5, 30, 60], [50, 8, 80, 62]], pid=1)])["loss_tsa"].backward()
    objectness = gradient_norm(model.proposal_generator.rpn_head.objectness_logits)
    box_classifier = gradient_norm(model.roi_heads.box_predictor.cls_score)
    assert (objectness > 0, box_classifier > 0) == (detector == "rpn", detector == "box")
    assert gradient_norm(model.proposal_generator.rpn_head.anchor_deltas) == 0.0
    # Q (the re-id head's NAE confidence) moves only in the bidirectional variant
    assert (gradient_norm(model.roi_heads.reid_branch.head) > 0) == (mode == "bidirectional")


def test_tsa_p_is_the_sigmoid_of_the_objectness_logit_of_the_proposals_anchor(root, tmp_path):
    model = tsa_model(root, tmp_path)
    rpn = model.proposal_generator
    maps = []  # Detectron2's pred_objectness_logits: one [N, A, H, W] per level

    def keep_objectness(module, args, out):
        for logit_map in out[0]:
            logit_map.retain_grad()
            maps.append(logit_map)

    hook = rpn.rpn_head.register_forward_hook(keep_objectness)
    inputs = [tiny_input(0, [[5, 5, 30, 60], [50, 8, 80, 62]], pid=1)]
    gt_boxes = inputs[0]["instances"].gt_boxes.tensor
    with EventStorage():
        images = model.preprocess_image(inputs)
        features = model.backbone(images.tensor)
        targets = [x["instances"] for x in inputs]
        proposals, _ = model.propose(images, features, targets, inputs)
        index_proposals(proposals, targets)
        sampled = model.roi_heads.label_and_sample_proposals(proposals, targets)
        predictions, _ = model.roi_heads.box_predictions_and_reid_features(features, [p.proposal_boxes for p in sampled])
        probs, aligned = model.tsa.detector_probs(proposals, sampled, predictions[0])
    hook.remove()
    # the ground-truth boxes ROI sampling appended have no anchor: left out of TSA
    appended = sampled[0].proposal_boxes.tensor[~aligned]
    assert len(appended) > 0 and (torch.cdist(appended, gt_boxes).min(dim=1).values == 0).all()
    assert len(probs) == int(aligned.sum()) > 0
    # each P is sigmoid(logit) of exactly one anchor of Detectron2's objectness map, with gradient there only
    (logit_map,) = maps
    for k in range(len(probs)):
        logit_map.grad = None
        probs[k].backward(retain_graph=True)
        (anchor,) = logit_map.grad.flatten().nonzero().flatten().tolist()
        p = torch.sigmoid(logit_map.flatten()[anchor])
        assert probs[k].item() == pytest.approx(p.item(), abs=1e-7)
        assert logit_map.grad.flatten()[anchor].item() == pytest.approx((p * (1 - p)).item(), rel=1e-5)
    # the proposals are Detectron2's (the tiny config keeps as many proposals in training as at test time)
    with torch.no_grad():
        rpn.eval()
        detached, _ = rpn(images, features)
    assert torch.equal(detached[0].proposal_boxes.tensor, proposals[0].proposal_boxes.tensor)
    assert torch.equal(detached[0].objectness_logits, proposals[0].objectness_logits.detach())


def test_tsa_on_the_rpn_needs_the_differentiable_objectness_rpn(root, tmp_path):
    cfg = laid_cfg(root, PREFIX, tmp_path)
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "PersonSearchRPN"
    with pytest.raises(ValueError, match="MODEL.PROPOSAL_GENERATOR.NAME"):
        build_model(cfg)
    cfg.PS.LAID.TSA.DETECTOR = "box"
    assert build_model(cfg).tsa.detector == "box"
