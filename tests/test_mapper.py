"""PersonSearchDatasetMapper: pid/box/pixel agreement under every recipe, k views, empty images, bad files."""
import copy

import numpy as np
import pytest
import torch
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from PIL import Image

from common import small_input_cfg
from ps_plugin.data.mapper import PersonSearchDatasetMapper

BACKGROUND = (128, 128, 128)
# pid -> colour of its box in the painted scene (RGB); -1 is an unlabeled person.
PID_COLOURS = {4: (255, 0, 0), 9: (0, 255, 0), -1: (0, 0, 255), 2: (255, 255, 0), 7: (255, 0, 255)}
SCENE_PIDS = [4, 9, -1, 2, 7]
SCENE_BOXES = [[10, 20, 50, 100], [70, 30, 110, 120], [130, 100, 170, 200], [200, 40, 250, 150], [270, 140, 310, 230]]
KNOWN_COLOURS = np.array(list(PID_COLOURS.values()) + [BACKGROUND, (0, 0, 0)], dtype=np.float64)
RECIPES = ["resize", "wrs", "rrc2", "rrc_scale"]


def scene_record(tmp_path, boxes=SCENE_BOXES, pids=SCENE_PIDS, name="scene.png", **extra):
    """A 240 x 320 PNG where each box is painted its pid's colour, and its dataset record."""
    image = np.empty((240, 320, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    for (x0, y0, x1, y1), pid in zip(boxes, pids):
        image[y0:y1, x0:x1] = PID_COLOURS[pid]
    path = tmp_path / name
    Image.fromarray(image).save(path)
    annotations = [
        {"bbox": [float(v) for v in box], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0, "person_id": pid}
        for box, pid in zip(boxes, pids)
    ]
    record = {"file_name": str(path), "image_id": name, "height": 240, "width": 320, "camera_id": 3,
              "annotations": annotations, "dataset_name": "toy_train", "domain": "source"}
    record.update(extra)
    return record


def box_colour(image, box):
    """Nearest known colour to the 3 x 3 pixels at the centre of an XYXY box; image [3, H, W]."""
    pixels = image.permute(1, 2, 0).numpy().astype(np.float64)
    cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
    mean = pixels[max(cy - 1, 0):cy + 2, max(cx - 1, 0):cx + 2].reshape(-1, 3).mean(axis=0)
    return tuple(int(v) for v in KNOWN_COLOURS[np.abs(KNOWN_COLOURS - mean).sum(axis=1).argmin()])


def assert_boxes_match_pids(view, record):
    instances = view["instances"]
    assert instances.image_size == tuple(view["image"].shape[1:])
    assert instances.gt_pids.dtype == torch.int64 and instances.gt_box_ids.dtype == torch.int64
    for box, pid, box_id in zip(instances.gt_boxes.tensor, instances.gt_pids.tolist(), instances.gt_box_ids.tolist()):
        assert record["annotations"][box_id]["person_id"] == pid
        assert box_colour(view["image"], box.tolist()) == PID_COLOURS[pid], (pid, box)


@pytest.mark.parametrize("recipe", RECIPES)
def test_pids_follow_their_boxes(tmp_path, recipe):
    np.random.seed(0)
    record = scene_record(tmp_path)
    mapper = PersonSearchDatasetMapper(small_input_cfg(TRAIN_AUG=recipe), is_train=True)
    counts = []
    for _ in range(15):
        view = mapper(record)
        assert_boxes_match_pids(view, record)
        assert (view["instances"].gt_classes == 0).all()
        counts.append(len(view["instances"]))
    if recipe in ("resize", "wrs"):
        assert counts == [5] * 15
    else:
        assert view["image"].shape == (3, 128, 128)
        assert min(counts) < 5  # crops drop boxes (with their pids) ...
        assert max(counts) >= 2  # ... and keep others


def test_flip_moves_pids_with_boxes(tmp_path):
    record = scene_record(tmp_path)
    view = PersonSearchDatasetMapper(small_input_cfg(TRAIN_AUG="resize", FLIP_PROB=1.0), is_train=True)(record)
    assert view["instances"].gt_pids.tolist() == SCENE_PIDS
    # 240 x 320 -> 200 x 267 (scale 200 / 240 in y, 267 / 320 in x), mirrored.
    first = view["instances"].gt_boxes.tensor[0]
    sx, sy = 267 / 320, 200 / 240
    np.testing.assert_allclose(first.numpy(), [267 - 50 * sx, 20 * sy, 267 - 10 * sx, 100 * sy], atol=1e-3)
    assert_boxes_match_pids(view, record)


def test_boxes_cropped_away_are_dropped_with_their_pid(tmp_path):
    record = scene_record(tmp_path)
    # Keep x in [0, 122): box 0 whole, box 1 (70..110) whole, box 2 (130..170) gone;
    # a second crop x in [0, 94) leaves 24 / 40 = 60 % of box 1 (kept). x in [0, 84): 35 % (dropped).
    for crop_w, kept in [(122, [4, 9]), (94, [4, 9]), (84, [4])]:
        mapper = PersonSearchDatasetMapper(
            True, augmentations=[T.CropTransform(0, 0, crop_w, 240)], image_format="RGB", min_box_visibility=0.4
        )
        view = mapper(record)
        assert view["instances"].gt_pids.tolist() == kept
        assert view["instances"].gt_box_ids.tolist() == list(range(len(kept)))
        assert view["instances"].gt_boxes.tensor[:, 2].max() <= crop_w


def test_k_views_are_independent_with_box_correspondence(tmp_path):
    np.random.seed(0)
    record = scene_record(tmp_path)
    mapper = PersonSearchDatasetMapper(small_input_cfg(TRAIN_AUG="rrc2", NUM_VIEWS=3), is_train=True)
    shared_ids = 0
    for _ in range(10):
        out = mapper(record)
        assert "annotations" not in out and out["image_id"] == "scene.png" and out["domain"] == "source"
        views = out["views"]
        assert len(views) == 3
        for view in views:
            assert view["image"].shape == (3, 128, 128) and view["file_name"] == record["file_name"]
            assert_boxes_match_pids(view, record)
        assert not torch.equal(views[0]["image"], views[1]["image"])
        ids = [set(v["instances"].gt_box_ids.tolist()) for v in views]
        shared_ids += len(ids[0] & ids[1])
    assert shared_ids > 0


def test_single_view_output_carries_record_keys(tmp_path):
    record = scene_record(tmp_path)
    before = copy.deepcopy(record)
    view = PersonSearchDatasetMapper(small_input_cfg(), is_train=True)(record)
    assert record == before  # the caller's dict is not modified
    for key in ("file_name", "image_id", "height", "width", "camera_id", "dataset_name", "domain"):
        assert view[key] == record[key]
    assert "annotations" not in view and view["image"].dtype == torch.uint8
    assert view["instances"].gt_box_ids.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("recipe", RECIPES)
def test_image_without_people(tmp_path, recipe):
    np.random.seed(0)
    record = scene_record(tmp_path, boxes=[], pids=[])
    for num_views in (1, 2):
        out = PersonSearchDatasetMapper(small_input_cfg(TRAIN_AUG=recipe, NUM_VIEWS=num_views), is_train=True)(record)
        for view in out.get("views", [out]):
            assert len(view["instances"]) == 0
            assert view["instances"].gt_boxes.tensor.shape == (0, 4)
            assert view["instances"].gt_pids.shape == (0,)
            if recipe.startswith("rrc"):
                assert view["image"].shape == (3, 128, 128)
    test_view = PersonSearchDatasetMapper(small_input_cfg(), is_train=False)(record)
    assert len(test_view["instances"]) == 0 and test_view["image"].shape == (3, 200, 267)


def test_query_record_gets_its_box_in_the_resized_image(tmp_path):
    record = scene_record(tmp_path, boxes=[[30, 60, 90, 180]], pids=[9], query_index=12)
    # 240 x 320 -> 200 x 267 ("resize") or 300 x 400 ("wrs").
    for recipe, (sx, sy) in [("resize", (267 / 320, 200 / 240)), ("wrs", (400 / 320, 300 / 240))]:
        out = PersonSearchDatasetMapper(small_input_cfg(TEST_AUG=recipe), is_train=False)(record)
        assert out["query_index"] == 12 and out["annotations"] == record["annotations"]
        assert out["query_boxes"].dtype == torch.float32
        np.testing.assert_allclose(out["query_boxes"].numpy(), [[30 * sx, 60 * sy, 90 * sx, 180 * sy]], rtol=1e-5)
        assert out["instances"].gt_pids.tolist() == [9]
        assert_boxes_match_pids(out, record)


def test_gallery_record_in_test_mode_has_no_query_boxes(tmp_path):
    out = PersonSearchDatasetMapper(small_input_cfg(), is_train=False)(scene_record(tmp_path))
    assert "query_boxes" not in out
    assert out["instances"].gt_pids.tolist() == SCENE_PIDS
    assert len(out["annotations"]) == 5


def test_bgr_format_reverses_channels(tmp_path):
    cfg = small_input_cfg()
    cfg.INPUT.FORMAT = "BGR"
    view = PersonSearchDatasetMapper(cfg, is_train=False)(scene_record(tmp_path, boxes=[[0, 0, 320, 240]], pids=[4]))
    assert view["image"][:, 100, 100].tolist() == [0, 0, 255]


def test_missing_size_is_filled_and_wrong_size_is_reported(tmp_path):
    record = scene_record(tmp_path, height=None, width=None)
    view = PersonSearchDatasetMapper(small_input_cfg(), is_train=False)(record)
    assert (view["height"], view["width"]) == (240, 320)
    with pytest.raises(Exception, match="scene.png"):
        PersonSearchDatasetMapper(small_input_cfg(), is_train=False)(scene_record(tmp_path, height=100))


@pytest.mark.parametrize("content", [b"not an image at all", None])
def test_unreadable_image_names_the_file(tmp_path, content):
    record = scene_record(tmp_path)
    broken = tmp_path / "broken.jpg"
    if content is not None:
        broken.write_bytes(content)
    record["file_name"] = str(broken)
    before = copy.deepcopy(record)
    with pytest.raises(OSError, match="broken.jpg") as error:
        PersonSearchDatasetMapper(small_input_cfg(), is_train=True)(record)
    assert "re-download" in str(error.value) and "remove this image" in str(error.value)
    assert record == before


def test_truncated_jpeg_names_the_file(tmp_path):
    record = scene_record(tmp_path)
    jpeg = tmp_path / "cut.jpg"
    Image.open(record["file_name"]).save(jpeg)
    jpeg.write_bytes(jpeg.read_bytes()[:300])
    record["file_name"] = str(jpeg)
    with pytest.raises(OSError, match="cut.jpg"):
        PersonSearchDatasetMapper(small_input_cfg(), is_train=True)(record)


def test_k_views_only_in_training():
    with pytest.raises(ValueError, match="NUM_VIEWS"):
        PersonSearchDatasetMapper(False, augmentations=[], image_format="RGB", num_views=2)
    assert PersonSearchDatasetMapper(small_input_cfg(NUM_VIEWS=2), is_train=False).num_views == 1
