"""OLA: weak supervision (identity-permutation invariance), exact resume of memories and labels,
multi-process labels, prototype matching, the hybrid memory loss, DMBE, inference and bad input."""
import pytest
import torch
import torch.nn.functional as F
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from ola_fixtures import memory_state, ola_cfg, ola_ddp_main, register_permuted
from ps_plugin.engine import launch
from ps_plugin.modeling.common import HybridClusterMemory
from ps_plugin.modeling.ola import DualMemoryEnhancement, PrototypeMatcher, dynamic_k
from ps_plugin.structures import QUERY_BOXES, QUERY_EMBEDDINGS
from train_fixtures import build_trainer, tiny_synthps

PREFIX = "ola_tiny"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tiny_synthps(tmp_path_factory.mktemp("ola_synthps"))


def loss_history(trainer):
    return {k: [v for v, _ in h.values()] for k, h in trainer.storage.histories().items() if k.startswith("loss")}


def test_training_never_reads_identities(root, tmp_path):
    """Every person id of the training set permuted: the same losses, memories and labels."""
    runs = []
    for train_set in (f"{PREFIX}_train", None):
        cfg = ola_cfg(root, PREFIX, tmp_path / str(len(runs)), MAX_ITER=5)
        if train_set is None:
            cfg.DATASETS.TRAIN = (register_permuted(PREFIX),)
        trainer = build_trainer(cfg)
        trainer.train()
        runs.append((loss_history(trainer), memory_state(trainer)))
    (losses, memories), (permuted_losses, permuted_memories) = runs
    assert losses == permuted_losses and len(losses["loss_reid_proposal"]) == 5
    for name, value in memories.items():
        assert torch.equal(value, permuted_memories[name]), name
    assert int(memories["pseudo_label_state.epoch"]) == 1  # clustered at iterations 0 and 4


@pytest.mark.parametrize("reliability", [False, True])
def test_resume_restores_memories_and_labels_exactly(root, tmp_path, reliability):
    def cfg(name, **solver):
        cfg = ola_cfg(root, PREFIX, tmp_path / name, MAX_ITER=6, **solver)
        cfg.PS.OLA.CLUSTER.RELIABILITY = reliability
        return cfg

    straight = build_trainer(cfg("straight"))
    straight.train()
    build_trainer(cfg("resumed", CHECKPOINT_PERIOD=3)).train()  # writes model_0000002.pth (epoch 0's labels)
    (tmp_path / "resumed" / "last_checkpoint").write_text("model_0000002.pth")
    resumed = build_trainer(cfg("resumed", CHECKPOINT_PERIOD=3), resume=True)
    assert resumed.start_iter == 3
    resumed.train()
    expected, actual = memory_state(straight), memory_state(resumed)
    for name, value in expected.items():
        assert torch.equal(actual[name], value), name
    assert int(actual["pseudo_label_state.num_slots"]) == len(actual["instance_memory.labels"]) > 0
    # the reliability criterion's independence threshold (set at epoch 0, kept at epoch 1) is checkpointed
    thresholds = [model.independence_threshold for model in (straight.model, resumed.model)]
    assert torch.equal(*thresholds) if reliability else all(t.isnan() for t in thresholds)


def test_resume_with_another_training_set_size_names_both_counts(root, tmp_path):
    cfg = ola_cfg(root, PREFIX, tmp_path, MAX_ITER=2, CHECKPOINT_PERIOD=1)
    build_trainer(cfg).train()
    checkpoint = tmp_path / "model_0000000.pth"
    state = torch.load(checkpoint, weights_only=False)
    state["model"]["pseudo_label_state.num_slots"].fill_(999)
    torch.save(state, checkpoint)
    (tmp_path / "last_checkpoint").write_text("model_0000000.pth")
    with pytest.raises(ValueError, match=rf"999 training boxes.*{PREFIX}_train.*has \d+"):
        build_trainer(cfg, resume=True).train()


def test_clustering_from_a_later_epoch_gives_each_box_its_own_class_before_it(root, tmp_path):
    """START_EPOCH 1: epoch 0 (iterations 0-3) trains on one class per box, epoch 1 on clusters; the
    checkpoint after iteration 3 holds epoch 0's labels."""
    cfg = ola_cfg(root, PREFIX, tmp_path, MAX_ITER=5, CHECKPOINT_PERIOD=4)
    cfg.PS.OLA.CLUSTER.START_EPOCH = 1
    trainer = build_trainer(cfg)
    trainer.train()
    epoch0 = torch.load(tmp_path / "model_0000003.pth", weights_only=False)["model"]
    epoch1 = memory_state(trainer)
    num_slots = len(epoch0["instance_memory.labels"])
    logged = [v for v, _ in trainer.storage.history("cluster/clusters").values()]
    assert int(epoch0["pseudo_label_state.epoch"]) == 0 and logged[0] == 0
    assert torch.equal(epoch0["instance_memory.labels"], torch.arange(num_slots))
    assert torch.equal(epoch0["proposal_memory.labels"], torch.arange(num_slots))
    assert int(epoch1["pseudo_label_state.epoch"]) == 1 and logged[-1] > 0
    assert len(torch.unique(epoch1["instance_memory.labels"])) < num_slots


@pytest.mark.slow
def test_two_gloo_processes_give_the_labels_of_one(root, tmp_path):
    state_dir = tmp_path / "states"
    state_dir.mkdir()
    cfg = ola_cfg(root, PREFIX, tmp_path / "ddp", IMS_PER_BATCH=4, MAX_ITER=1)
    launch(ola_ddp_main, 2, dist_url="auto", args=(cfg, str(root), PREFIX, str(state_dir)))
    ranks = [torch.load(state_dir / f"rank{r}.pt", weights_only=True) for r in range(2)]
    single = build_trainer(ola_cfg(root, PREFIX, tmp_path / "single", IMS_PER_BATCH=4, MAX_ITER=1))
    single.train()
    expected = memory_state(single)
    for name, value in ranks[0].items():
        assert torch.equal(ranks[1][name], value), name  # the ranks agree exactly
    for name in ("instance_memory.labels", "proposal_memory.labels", "pseudo_label_state.epoch"):
        assert torch.equal(ranks[0][name], expected[name]), name
    assert len(torch.unique(expected["instance_memory.labels"])) < len(expected["instance_memory.labels"])


def test_bad_clustering_keys_are_named(root, tmp_path):
    for key, value in (("EPS", 0.0), ("BETA", 1.5), ("RELIABILITY_DELTA", 0.6), ("START_EPOCH", -1)):
        cfg = ola_cfg(root, PREFIX, tmp_path)
        cfg.PS.OLA.CLUSTER.RELIABILITY = True
        cfg.PS.OLA.CLUSTER[key] = value
        with pytest.raises(ValueError, match=f"PS.OLA.CLUSTER.{key}"):
            build_model(cfg)


def eval_model(root, tmp_path, **ola_keys):
    cfg = ola_cfg(root, PREFIX, tmp_path)
    cfg.PS.OLA.update(**ola_keys)
    torch.manual_seed(0)
    return build_model(cfg).eval(), cfg


def test_inference_embeds_boxes_as_proposal_and_crop(root, tmp_path):
    model, cfg = eval_model(root, tmp_path)
    image = torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8)
    box = [[10.0, 5.0, 40.0, 60.0]]
    with torch.no_grad():
        query, gallery = model([{"image": image, QUERY_BOXES: box}, {"image": image}])
        proposal_only = eval_model(root, tmp_path, TEST_EMBEDDING="proposal")[0]([{"image": image, QUERY_BOXES: box}])
    dim = cfg.PS.REID.EMBED_DIM
    assert query[QUERY_EMBEDDINGS].shape == (1, 2 * dim)
    assert torch.allclose(query[QUERY_EMBEDDINGS].norm(dim=1), torch.ones(1))
    # the first half is the proposal branch's embedding / sqrt(2)
    assert torch.allclose(query[QUERY_EMBEDDINGS][:, :dim] * 2**0.5, proposal_only[0][QUERY_EMBEDDINGS], atol=1e-5)
    embeddings = gallery["instances"].pred_embeddings
    assert embeddings.shape[1] == 2 * dim and torch.allclose(embeddings.norm(dim=1), torch.ones(len(embeddings)))


def training_input(image_id, boxes, height=64, width=96):
    instances = Instances((height, width), gt_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)))
    instances.gt_classes = torch.zeros(len(instances), dtype=torch.long)
    instances.gt_pids = torch.full((len(instances),), 3, dtype=torch.long)
    instances.gt_box_ids = torch.arange(len(instances))
    return {"image": torch.randint(0, 255, (3, height, width), dtype=torch.uint8), "instances": instances,
            "image_id": image_id, "dataset_name": "toy"}


def test_an_image_without_boxes_trains_with_finite_losses(root, tmp_path):
    model, _ = eval_model(root, tmp_path)
    model.train()
    records = [{"image_id": "a", "dataset_name": "toy", "annotations": [{}] * 2}, {"image_id": "b", "dataset_name": "toy", "annotations": []}]
    model.proposal_memory = HybridClusterMemory(2, model.embed_dim)
    model.instance_memory = HybridClusterMemory(2, model.embed_dim)
    model.index_training_boxes(records)
    with EventStorage():
        losses = model([training_input("a", [[5, 5, 30, 60], [50, 4, 80, 62]]), training_input("b", [])])
        sum(losses.values()).backward()
        empty = model([training_input("b", [])])  # no box in the whole batch
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(torch.isfinite(v) for v in empty.values())


def test_memory_size_differing_from_the_records_is_named(root, tmp_path):
    model, _ = eval_model(root, tmp_path)
    with pytest.raises(ValueError, match=r"\['toy'\] has 1 boxes"):
        model.index_training_boxes([{"image_id": "a", "dataset_name": "toy", "annotations": [{}]}])


def test_hybrid_memory_loss_is_the_hand_computed_cross_entropy():
    memory = HybridClusterMemory(3, 2, temperature=0.5)
    memory.write(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), torch.arange(3))
    memory.set_labels([0, 0, 1])  # slots 0 and 1 clustered, slot 2 an outlier of its own class
    x = torch.tensor([[1.0, 0.0]])
    cluster = (1.0 + 0.0) / 2 / 0.5  # mean of x.v over the cluster's members / tau
    outlier = -1.0 / 0.5
    expected = -torch.log_softmax(torch.tensor([cluster, outlier]), dim=0)[0]
    assert memory.loss(x, torch.tensor([1])).item() == pytest.approx(expected.item())
    memory.update(torch.tensor([[0.0, -1.0]]), torch.tensor([1]))  # momentum 0.2: 0.2 old + 0.8 new
    assert torch.allclose(memory.features[1], F.normalize(torch.tensor([0.0, 0.2 - 0.8]), dim=0))


def test_dynamic_k_is_the_sum_of_top_q_ious_at_least_one():
    iou = torch.tensor([[0.9, 0.8, 0.7, 0.1], [0.2, 0.1, 0.0, 0.0]])
    assert dynamic_k(iou, top_q=3).tolist() == [2, 1]  # int(2.4) = 2; int(0.3) -> 1


def two_person_image():
    gt = torch.tensor([[0.0, 0.0, 10.0, 20.0], [30.0, 0.0, 40.0, 20.0]])
    proposals = torch.tensor([[0.0, 0.0, 10.0, 19.0], [1.0, 0.0, 10.0, 20.0], [30.0, 1.0, 40.0, 20.0], [15.0, 0.0, 25.0, 20.0]])
    crops = F.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), dim=1)
    embeddings = F.normalize(torch.tensor([[1.0, 0.1, 0.0], [0.9, 0.1, 0.1], [0.1, 1.0, 0.0], [0.0, 0.0, 1.0]]), dim=1)
    background = torch.tensor([0.0, 0.0, 1.0])
    return gt, proposals, crops, embeddings, background


def test_prototype_matching_assigns_each_proposal_its_person_or_background():
    gt, proposals, crops, embeddings, background = two_person_image()
    matcher = PrototypeMatcher("paper", use_dynamic_k=False, k=1, epsilon=0.05, iterations=200)
    foreground = torch.tensor([True, True, True, False])
    (labels,) = matcher([proposals], [proposals], [embeddings], [foreground], [gt], [crops], [background], ["img"])
    # GT 0 supplies one unit: the better of its two proposals (0) takes it, proposal 1 goes to background
    assert labels.tolist() == [0, -1, 1, -1]
    code = PrototypeMatcher("code", epsilon=0.05, iterations=200)
    (labels,) = code([proposals], [proposals], [embeddings], [foreground], [gt], [crops], None, ["img"])
    assert labels.tolist()[3] == -1 and labels[2] == 1  # negatives stay background in the code's version


def test_prototype_matching_names_the_image_with_a_nan_cost():
    gt, proposals, crops, embeddings, background = two_person_image()
    embeddings[1, 0] = float("nan")
    with pytest.raises(ValueError, match="scene_7.jpg"):
        PrototypeMatcher()([proposals], [proposals], [embeddings], [torch.ones(4, dtype=torch.bool)], [gt], [crops],
                           [background], ["scene_7.jpg"])


def test_dmbe_exchanges_information_and_leaves_an_empty_side_alone():
    torch.manual_seed(0)
    enhancement = DualMemoryEnhancement(8, 2)
    proposals, instances = F.normalize(torch.randn(5, 8), dim=1), F.normalize(torch.randn(2, 8), dim=1)
    new_proposals, new_instances = enhancement(proposals, instances)
    assert new_proposals.shape == (5, 8) and new_instances.shape == (2, 8)
    assert torch.allclose(new_instances.norm(dim=1), torch.ones(2))
    changed = enhancement(proposals, F.normalize(torch.randn(2, 8), dim=1))[0]
    assert not torch.allclose(changed, new_proposals)  # proposals depend on the image's instances
    assert enhancement(proposals[:0], instances)[1] is instances
