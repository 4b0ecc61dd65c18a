"""PersonSearchMetaArch: the batch bookkeeping on a hand-made toy method, then the contract of the
three methods built on it (Baseline, SPNet OC, PSDiff) against their own hooks, on tiny CPU models."""
import pytest
import torch
import torch.nn.functional as F
from detectron2.modeling import Backbone
from detectron2.structures import Boxes, Instances

import test_model_baseline as baseline_tests
import test_psdiff_meta_arch as psdiff_tests
import test_spnet_model as spnet_tests
from ps_plugin.modeling.common import PersonSearchMetaArch
from ps_plugin.structures import GT_BOXES_FOR_REID, GT_EMBEDDINGS, QUERY_BOXES, QUERY_EMBEDDINGS

H, W = 32, 48


class IdentityBackbone(Backbone):
    """The normalised image itself as the only feature map "image"."""

    @property
    def size_divisibility(self):
        return 16

    def forward(self, x):
        return {"image": x}

    def output_shape(self):
        return {}


class MeanColorMethod(PersonSearchMetaArch):
    """A toy method: detects one fixed box per image with score = the image's mean value; a box's
    embedding is the normalised mean colour inside it (padded to 4 channels)."""

    DETECTED_BOX = [8.0, 4.0, 24.0, 20.0]

    def __init__(self, joint_embeddings=False):
        super().__init__()
        self.backbone = IdentityBackbone()
        self.register_pixel_statistics([10.0, 20.0, 30.0], [2.0, 4.0, 5.0])
        self.joint_embeddings = joint_embeddings

    def detect(self, images, features, inputs):
        detections = []
        for i, (height, width) in enumerate(images.image_sizes):
            det = Instances((height, width))
            det.pred_boxes = Boxes(torch.tensor([self.DETECTED_BOX]))
            det.scores = features["image"][i, :, :height, :width].mean().reshape(1)
            det.pred_classes = torch.zeros(1, dtype=torch.int64)
            if self.joint_embeddings:
                det.pred_embeddings = torch.ones(1, 4) / 2
            detections.append(det)
        return detections

    def embed_boxes(self, features, boxes):
        out = []
        for image, image_boxes in zip(features["image"], boxes):
            means = [image[:, y1:y2, x1:x2].mean((1, 2)) for x1, y1, x2, y2 in image_boxes.int().tolist()]
            stacked = torch.stack(means) if means else torch.zeros(0, 3)
            out.append(F.normalize(F.pad(stacked, (0, 1), value=1.0), dim=1))
        return out

    def losses(self, batched_inputs):
        return {"loss_zero": self.pixel_mean.sum() * 0}


def flat_image(value, height=H, width=W):
    return torch.full((3, height, width), value, dtype=torch.uint8)


def test_method_missing_a_hook_cannot_be_built_and_the_error_names_it():
    class DetectOnly(PersonSearchMetaArch):
        def detect(self, images, features, inputs):
            return []

    with pytest.raises(TypeError, match="embed_boxes") as error:
        DetectOnly()
    assert "losses" in str(error.value)


def test_preprocess_is_float32_normalised_and_padded_for_uint8_and_float_images():
    model = MeanColorMethod()
    uint8 = model.preprocess_image([{"image": flat_image(50)}, {"image": flat_image(70, 20, 40)}])
    as_float = model.preprocess_image([{"image": flat_image(50).float()}, {"image": flat_image(70, 20, 40).double()}])
    assert uint8.tensor.dtype == as_float.tensor.dtype == torch.float32
    assert torch.equal(uint8.tensor, as_float.tensor)
    assert uint8.tensor.shape == (2, 3, 32, 48) and uint8.image_sizes == [(32, 48), (20, 40)]
    assert uint8.tensor[0, :, 0, 0].tolist() == [20.0, 7.5, 4.0]  # (50 - mean) / std
    assert uint8.tensor[1, :, 0, 0].tolist() == [30.0, 12.5, 8.0]
    assert uint8.tensor[1, :, 25:, :].abs().sum() == 0  # zero padding below the smaller image


def test_forward_dispatches_on_training_mode():
    model = MeanColorMethod()
    assert set(model.train()([{"image": flat_image(0)}])) == {"loss_zero"}
    assert "instances" in model.eval()([{"image": flat_image(0)}])[0]


def test_outputs_follow_input_order_and_gallery_detections_are_rescaled():
    model = MeanColorMethod().eval()
    query_boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0], [16.0, 16.0, 48.0, 32.0]])
    batch = [
        {"image": flat_image(50), "height": 2 * H, "width": 3 * W},
        {"image": flat_image(70), QUERY_BOXES: query_boxes},
        {"image": flat_image(90)},
    ]
    outputs = model(batch)
    assert [sorted(o) for o in outputs] == [["instances"], [QUERY_EMBEDDINGS], ["instances"]]
    first, last = outputs[0]["instances"], outputs[2]["instances"]
    assert first.scores.item() == pytest.approx((20.0 + 7.5 + 4.0) / 3)  # from image 0, not image 1
    assert last.scores.item() == pytest.approx((40.0 + 17.5 + 12.0) / 3)  # from image 2
    assert first.image_size == (2 * H, 3 * W) and last.image_size == (H, W)
    assert first.pred_boxes.tensor.tolist() == [[24.0, 8.0, 72.0, 40.0]]  # x * 3, y * 2
    assert last.pred_boxes.tensor.tolist() == [MeanColorMethod.DETECTED_BOX]
    expected_query = F.normalize(torch.tensor([[30.0, 12.5, 8.0, 1.0]]), dim=1).expand(2, 4)
    assert torch.allclose(outputs[1][QUERY_EMBEDDINGS], expected_query)
    unscaled = model.inference(batch, do_postprocess=False)[0]["instances"]
    assert unscaled.image_size == (H, W) and unscaled.pred_boxes.tensor.tolist() == [MeanColorMethod.DETECTED_BOX]


def test_gt_embeddings_only_for_inputs_with_gt_boxes_in_their_row_order():
    model = MeanColorMethod().eval()
    image = flat_image(0)
    image[0, :, :16] = 40  # the left third is redder
    gt_boxes = torch.tensor([[0.0, 0.0, 16.0, 32.0], [16.0, 0.0, 48.0, 32.0]])
    outputs = model([
        {"image": image, GT_BOXES_FOR_REID: gt_boxes},
        {"image": image},
        {"image": image, GT_BOXES_FOR_REID: gt_boxes.flip(0)},
        {"image": image, GT_BOXES_FOR_REID: torch.zeros(0, 4)},
    ])
    left, right = F.normalize(torch.tensor([[15.0, -5.0, -6.0, 1.0], [-5.0, -5.0, -6.0, 1.0]]), dim=1)
    assert torch.allclose(outputs[0][GT_EMBEDDINGS], torch.stack([left, right]))
    assert torch.allclose(outputs[2][GT_EMBEDDINGS], torch.stack([right, left]))
    assert GT_EMBEDDINGS not in outputs[1] and outputs[3][GT_EMBEDDINGS].shape == (0, 4)


def test_pred_embeddings_from_embed_boxes_unless_detect_sets_them():
    image = {"image": flat_image(50)}
    filled = MeanColorMethod().eval()([image])[0]["instances"]
    expected = F.normalize(torch.tensor([[20.0, 7.5, 4.0, 1.0]]), dim=1)
    assert torch.allclose(filled.pred_embeddings, expected)
    joint = MeanColorMethod(joint_embeddings=True).eval()([image])[0]["instances"]
    assert torch.equal(joint.pred_embeddings, torch.ones(1, 4) / 2)


def test_detect_setting_embeddings_on_some_images_only_is_a_clear_error():
    model = MeanColorMethod(joint_embeddings=True).eval()
    detections = model.detect(*_images_and_features(model, [{"image": flat_image(0)}] * 2), None)
    detections[1].remove("pred_embeddings")
    with pytest.raises(ValueError, match=r"some images only \(missing on \[1\]\)"):
        model.attach_embeddings({}, detections)


def _images_and_features(model, inputs):
    images = model.preprocess_image(inputs)
    return images, model.backbone(images.tensor)


# ------------------------------------------------------------------ the three methods on the base
def _baseline():
    return baseline_tests.build(baseline_tests.tiny_model_cfg())


def _spnet():
    cfg = spnet_tests.tiny_spnet_cfg("oc", cascade_steps=1)
    cfg.PS.SPNET.TEST.SCORE_THRESH = 0.0
    cfg.PS.SPNET.TEST.DETECTIONS_PER_IMAGE = 20
    return spnet_tests._build(cfg)


def _psdiff():
    return psdiff_tests.tiny_psdiff()


@pytest.fixture(scope="module", params=[_baseline, _spnet, _psdiff], ids=["baseline", "spnet_oc", "psdiff"])
def method(request):
    return request.param().eval()


def _inputs(seed, size=(64, 96)):
    image = torch.randint(0, 255, (3,) + size, generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return {"image": image}


BOXES = torch.tensor([[10.0, 10.0, 30.0, 50.0], [50.0, 5.0, 80.0, 60.0], [0.0, 0.0, 20.0, 30.0]])


@torch.no_grad()
def _embed_alone(model, image, boxes):
    """The method's own embed_boxes on one image's features (the reference for the base's paths)."""
    _, features = _images_and_features(model, [{"image": image}])
    return model.embed_boxes(features, [boxes])[0]


@torch.no_grad()
def test_query_and_gt_embeddings_equal_embed_boxes_on_the_same_boxes(method):
    """Row m is the method's embedding of box m (PSDiff's also depends on the other rows: its
    denoiser lets boxes interact, so a reordered list is compared with embed_boxes of that order)."""
    query = dict(_inputs(1), **{QUERY_BOXES: BOXES})
    gallery = dict(_inputs(1), **{GT_BOXES_FOR_REID: BOXES.flip(0)})
    expected = _embed_alone(method, query["image"], BOXES)
    assert expected.shape[0] == 3 and torch.allclose(expected.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.equal(method([query])[0][QUERY_EMBEDDINGS], expected)
    assert torch.equal(method([gallery])[0][GT_EMBEDDINGS], _embed_alone(method, gallery["image"], BOXES.flip(0)))


@torch.no_grad()
def test_mixed_batch_outputs_follow_input_order(method):
    gallery = dict(_inputs(1), height=128, width=192, **{GT_BOXES_FOR_REID: BOXES[:2]})
    query = dict(_inputs(2), **{QUERY_BOXES: BOXES})
    outputs = method([gallery, query, _inputs(3)])
    assert [sorted(o) for o in outputs] == [[GT_EMBEDDINGS, "instances"], [QUERY_EMBEDDINGS], ["instances"]]
    assert outputs[0][GT_EMBEDDINGS].shape[0] == 2 and outputs[1][QUERY_EMBEDDINGS].shape[0] == 3
    assert outputs[0]["instances"].image_size == (128, 192) and outputs[2]["instances"].image_size == (64, 96)
    # the query row is image 2's, not its gallery neighbours': same boxes, different image
    assert torch.allclose(outputs[1][QUERY_EMBEDDINGS], _embed_alone(method, query["image"], BOXES), atol=1e-5)
    assert not torch.allclose(outputs[1][QUERY_EMBEDDINGS][:2], outputs[0][GT_EMBEDDINGS], atol=1e-3)


@torch.no_grad()
def test_gallery_detections_are_rescaled_and_clipped_to_the_original_size_with_unit_embeddings(method):
    gallery = dict(_inputs(1), height=128, width=144)
    torch.manual_seed(5)  # PSDiff samples its initial boxes from the global generator
    unscaled = method.inference([gallery], do_postprocess=False)[0]["instances"]
    torch.manual_seed(5)
    scaled = method([gallery])[0]["instances"]
    assert len(scaled) > 0 and set(scaled.get_fields()) == {"pred_boxes", "scores", "pred_classes", "pred_embeddings"}
    assert unscaled.image_size == (64, 96) and scaled.image_size == (128, 144)
    expected = Boxes(unscaled.pred_boxes.tensor * torch.tensor([144 / 96, 128 / 64] * 2))
    expected.clip((128, 144))
    keep = expected.nonempty()  # Detectron2's detector_postprocess drops boxes empty after clipping
    assert torch.allclose(scaled.pred_boxes.tensor, expected.tensor[keep], atol=1e-4)
    assert torch.equal(scaled.scores, unscaled.scores[keep])
    assert torch.equal(scaled.pred_embeddings, unscaled.pred_embeddings[keep])
    assert torch.allclose(scaled.pred_embeddings.norm(dim=1), torch.ones(len(scaled)), atol=1e-5)
