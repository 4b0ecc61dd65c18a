"""PersonSearchRCNN: training losses, gallery / query inference, NAE, checkpoints (tiny CPU models)."""
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from common import tiny_cfg

H, W = 96, 128
EMBED_DIM = 16


def tiny_model_cfg(c4=False, nae=False):
    """MobileNetV2 single-map (res4) + StandardROIHeads, or Detectron2 R18 C4 + Res5 heads."""
    cfg = tiny_cfg()
    cfg.MODEL.META_ARCHITECTURE = "PersonSearchRCNN"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 1
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 100
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 20
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    cfg.PS.REID.update(NUM_PIDS=5, QUEUE_SIZE=8, EMBED_DIM=EMBED_DIM, NAE=nae)
    if c4:
        cfg.MODEL.RESNETS.DEPTH = 18
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
        cfg.MODEL.RESNETS.NORM = "BN"
        cfg.MODEL.ROI_HEADS.NAME = "PersonSearchRes5ROIHeads"
        cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 4
    else:
        cfg.MODEL.BACKBONE.NAME = "build_timm_backbone"
        cfg.PS.BACKBONE.update(NAME="mobilenetv2_050", FPN=False, OUT_FEATURES=["res4"])
        cfg.MODEL.ROI_HEADS.NAME = "PersonSearchStandardROIHeads"
        cfg.MODEL.ROI_BOX_HEAD.update(NAME="FastRCNNConvFCHead", NUM_FC=1, FC_DIM=32, POOLER_RESOLUTION=4)
    return cfg


def build(cfg, seed=0):
    torch.manual_seed(seed)
    return build_model(cfg)


def person_instances(boxes, pids):
    instances = Instances((H, W))
    instances.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    instances.gt_classes = torch.zeros(len(pids), dtype=torch.int64)
    instances.gt_pids = torch.tensor(pids, dtype=torch.int64)
    return instances


def image(seed=1):
    return torch.randint(0, 255, (3, H, W), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def train_batch(pids=(1, -1)):
    people = person_instances([[10, 10, 40, 80], [60, 20, 90, 90]], list(pids))
    return [{"image": image(1), "instances": people}, {"image": image(2), "instances": person_instances([], [])}]


def train_step(model, batch):
    model.train()
    with EventStorage():
        losses = model(batch)
        sum(losses.values()).backward()
    return losses


@pytest.mark.parametrize("c4", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_training_losses_and_gradients_with_empty_and_nonempty_images(c4):
    model = build(tiny_model_cfg(c4=c4))
    losses = train_step(model, train_batch())
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_oim"}
    assert all(torch.isfinite(v) for v in losses.values())
    oim = model.roi_heads.reid_branch.oim
    # zero-initialised tables give uniform logits: loss = log(NUM_PIDS + QUEUE_SIZE)
    assert losses["loss_oim"].item() == pytest.approx(torch.log(torch.tensor(13.0)).item(), abs=1e-4)
    # ... whose gradient vanishes (every table entry is zero); the step fills the tables:
    # the labeled person (pid 1) updated its LUT row, unlabeled foreground entered the queue
    projection = model.roi_heads.reid_branch.head.projection
    assert projection.weight.grad.abs().sum() == 0
    assert oim.lut.features[1].norm().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.equal(oim.lut.features[[0, 2, 3, 4]], torch.zeros(4, EMBED_DIM))
    assert int(oim.queue.pointer) > 0
    losses = train_step(model, train_batch())
    assert losses["loss_oim"].item() < torch.log(torch.tensor(13.0)).item()
    assert projection.weight.grad.abs().sum() > 0


def test_batch_without_labeled_person_trains_with_zero_oim_loss():
    model = build(tiny_model_cfg())
    losses = train_step(model, train_batch(pids=(-1, -1)))
    assert losses["loss_oim"].item() == 0.0
    assert torch.equal(model.roi_heads.reid_branch.oim.lut.features, torch.zeros(5, EMBED_DIM))


def test_nae_adds_norm_detection_loss_and_scores_from_norms():
    model = build(tiny_model_cfg(nae=True))
    losses = train_step(model, train_batch())
    assert "loss_nae_det" in losses and losses["loss_nae_det"].item() > 0
    model.eval()
    with torch.no_grad():
        instances = model([{"image": image(1)}])[0]["instances"]
        embeddings, scores = model.roi_heads.embed_boxes(
            model.backbone(model.preprocess_image([{"image": image(1)}]).tensor), [instances.pred_boxes]
        )
    assert torch.allclose(instances.scores, scores, atol=1e-5)
    assert ((instances.scores > 0) & (instances.scores < 1)).all()


def _assert_unit_rows(x, rows):
    assert tuple(x.shape) == (rows, EMBED_DIM)
    assert torch.allclose(x.norm(dim=1), torch.ones(rows), atol=1e-5)


@pytest.mark.parametrize("c4", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_gallery_and_query_inference_in_one_batch(c4):
    model = build(tiny_model_cfg(c4=c4)).eval()
    query_boxes = torch.tensor([[10.0, 10, 40, 80], [60, 20, 90, 90], [0, 0, 20, 30]])
    batch = [
        {"image": image(1), "height": 2 * H, "width": 2 * W, "gt_boxes_for_reid": query_boxes[:2]},
        {"image": image(1), "query_boxes": query_boxes},
        {"image": image(2)},
    ]
    with torch.no_grad():
        outputs = model(batch)
    gallery = outputs[0]["instances"]
    assert set(gallery.get_fields()) == {"pred_boxes", "scores", "pred_classes", "pred_embeddings"}
    assert gallery.image_size == (2 * H, 2 * W) and len(gallery) > 0
    assert gallery.pred_boxes.tensor[:, 2].max() <= 2 * W and gallery.pred_boxes.tensor[:, 3].max() <= 2 * H
    assert gallery.pred_boxes.tensor[:, 2].max() > W  # rescaled to the original size
    _assert_unit_rows(gallery.pred_embeddings, len(gallery))
    _assert_unit_rows(outputs[1]["query_embeddings"], 3)
    assert set(outputs[1]) == {"query_embeddings"}
    # same image, same boxes: query embeddings equal the gallery pass's gt embeddings
    assert torch.allclose(outputs[0]["gt_embeddings"], outputs[1]["query_embeddings"][:2], atol=1e-5)
    assert "gt_embeddings" not in outputs[2] and outputs[2]["instances"].image_size == (H, W)


def test_query_embedding_does_not_depend_on_batch_neighbours():
    model = build(tiny_model_cfg()).eval()
    query = {"image": image(1), "query_boxes": torch.tensor([[10.0, 10, 40, 80]])}
    with torch.no_grad():
        alone = model([query])[0]["query_embeddings"]
        mixed = model([{"image": image(2)}, query])[1]["query_embeddings"]
    assert torch.allclose(alone, mixed, atol=1e-5)


def test_checkpoint_round_trip_keeps_oim_tables(tmp_path):
    model = build(tiny_model_cfg())
    train_step(model, train_batch())
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("model_final")
    restored = build(tiny_model_cfg(), seed=1)
    DetectionCheckpointer(restored).load(str(tmp_path / "model_final.pth"))
    for name in ["lut.features", "queue.features", "queue.pointer"]:
        key = f"roi_heads.reid_branch.oim.{name}"
        assert torch.equal(restored.state_dict()[key], model.state_dict()[key]), key
    assert model.roi_heads.reid_branch.oim.queue.features.abs().sum() > 0


def test_wrong_model_weights_path_is_named():
    model = build(tiny_model_cfg())
    with pytest.raises(Exception, match="/nonexistent/weights.pth"):
        DetectionCheckpointer(model).load("/nonexistent/weights.pth")


def test_unsized_lookup_table_reads_no_data_and_takes_the_checkpoints_rows(tmp_path):
    from ps_plugin.data.datasets.synthps import register_all_synthps
    from ps_plugin.engine import PersonSearchCheckpointer

    trained = build(tiny_model_cfg())
    train_step(trained, train_batch())
    DetectionCheckpointer(trained, save_dir=str(tmp_path)).save("model_final")
    register_all_synthps(root=str(tmp_path / "absent"), prefix="absent_synthps")
    cfg = tiny_model_cfg()
    cfg.PS.REID.NUM_PIDS = 0
    cfg.DATASETS.TRAIN = ("absent_synthps_train",)  # never read: inference needs only the checkpoint
    model = build(cfg)
    assert model.roi_heads.reid_branch.oim.lut.features.shape == (0, EMBED_DIM)
    with pytest.raises(ValueError, match="PersonSearchTrainer"):
        train_step(model, train_batch())  # an unsized table cannot train
    PersonSearchCheckpointer(model).load(str(tmp_path / "model_final.pth"))
    key = "roi_heads.reid_branch.oim.lut.features"
    assert torch.equal(model.state_dict()[key], trained.state_dict()[key])
