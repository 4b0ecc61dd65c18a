"""Person-search augmentations: recipe geometry, crop guarantees, random ranges, box/pixel agreement."""
import numpy as np
import pytest
from detectron2.data import transforms as T

from common import small_input_cfg
from ps_plugin.config import get_ps_cfg
from ps_plugin.data.transforms import (
    CenteredPad,
    ExpandResize,
    RandomBBoxSafeCrop,
    RandomChoice,
    RandomFocusedCrop,
    RandomPaste,
    RandomScale,
    build_person_search_augmentation,
    crop_and_resize,
    eroded_union,
)

BACKGROUND = (128, 128, 128)
PALETTE = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255)]
# Non-overlapping boxes of a 240 x 320 scene; box i is painted PALETTE[i].
SCENE_BOXES = np.array(
    [[10, 20, 50, 100], [70, 30, 110, 120], [130, 100, 170, 200], [200, 40, 250, 150], [270, 140, 310, 230]],
    dtype=np.float32,
)


def painted_scene(boxes=SCENE_BOXES, hw=(240, 320)):
    image = np.empty((*hw, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    for box, colour in zip(boxes.astype(int), PALETTE):
        image[box[1]:box[3], box[0]:box[2]] = colour
    return image


def centre_colour(image, box):
    """Mean colour of the 3 x 3 pixels at the centre of an XYXY box."""
    cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
    return image[max(cy - 1, 0):cy + 2, max(cx - 1, 0):cx + 2].reshape(-1, 3).mean(axis=0)


def augment(augmentations, image, boxes):
    aug_input = T.AugInput(image, boxes=boxes.copy())
    tfms = T.AugmentationList(augmentations)(aug_input)
    return aug_input.image, aug_input.boxes, tfms


@pytest.mark.parametrize("recipe", ["resize", "wrs"])
def test_resize_recipes_keep_every_box_on_its_colour(recipe):
    np.random.seed(0)
    cfg = small_input_cfg(TRAIN_AUG=recipe, FLIP_PROB=1.0)
    image, boxes, _ = augment(build_person_search_augmentation(cfg, True), painted_scene(), SCENE_BOXES)
    # 240 x 320: "resize" to short side 200 -> 200 x 267; "wrs" to short side 300 -> 300 x 400.
    assert image.shape[:2] == {"resize": (200, 267), "wrs": (300, 400)}[recipe]
    scale = image.shape[0] / 240
    flipped_x1 = image.shape[1] - SCENE_BOXES[:, 2] * image.shape[1] / 320
    np.testing.assert_allclose(boxes[:, 0], flipped_x1, atol=1e-3)
    np.testing.assert_allclose(boxes[:, 1], SCENE_BOXES[:, 1] * scale, atol=1e-3)
    for box, colour in zip(boxes, PALETTE):
        np.testing.assert_allclose(centre_colour(image, box), colour, atol=2)


def test_window_resize_caps_long_side():
    (resize,) = build_person_search_augmentation(small_input_cfg(TEST_AUG="wrs"), False)
    assert resize.get_transform(np.zeros((200, 1000, 3), np.uint8)).new_w == 500  # long side capped
    assert resize.get_transform(np.zeros((200, 250, 3), np.uint8)).new_h == 300  # short side 300
    cfg = get_ps_cfg()
    cfg.PS.INPUT.TEST_AUG = "wrs"
    (resize,) = build_person_search_augmentation(cfg, False)
    tfm = resize.get_transform(np.zeros((600, 800, 3), np.uint8))
    assert (tfm.new_h, tfm.new_w) == (900, 1200)
    tfm = resize.get_transform(np.zeros((480, 1280, 3), np.uint8))
    assert (tfm.new_h, tfm.new_w) == (563, 1500)  # 480 * 1500 / 1280 = 562.5, rounded half up


def test_random_scale_factor_is_uniform_in_range():
    np.random.seed(0)
    image = np.zeros((1000, 1000, 3), np.uint8)
    factors = np.array([RandomScale((1.5, 3.0)).get_transform(image).new_w / 1000 for _ in range(2000)])
    assert factors.min() >= 1.5 and factors.max() <= 3.0
    assert factors.min() < 1.52 and factors.max() > 2.98
    assert abs(factors.mean() - 2.25) < 0.03
    assert abs(np.median(factors) - 2.25) < 0.05
    with pytest.raises(ValueError, match="scale_range"):
        RandomScale((2.0, 0.5))


def test_random_scale_moves_boxes_with_pixels():
    np.random.seed(1)
    image, boxes, tfms = augment([RandomScale((0.5, 2.0))], painted_scene(), SCENE_BOXES)
    factor = image.shape[1] / 320
    assert 0.5 <= factor <= 2.0
    np.testing.assert_allclose(boxes, SCENE_BOXES * factor, rtol=0.01)
    for box, colour in zip(boxes, PALETTE):
        np.testing.assert_allclose(centre_colour(image, box), colour, atol=2)


def test_centered_pad_is_black_and_centred():
    image = np.full((100, 300, 3), 200, np.uint8)
    padded = CenteredPad(384).get_transform(image).apply_image(image)
    assert padded.shape == (384, 384, 3)
    assert (padded[:142] == 0).all() and (padded[242:] == 0).all()  # 284 rows: 142 above, 142 below
    assert (padded[142:242, 42:342] == 200).all() and (padded[:, :42] == 0).all()
    assert isinstance(CenteredPad(50).get_transform(image), T.NoOpTransform)


def test_crop_and_resize_pads_outside_window_black():
    image = np.full((100, 100, 3), 255, np.uint8)
    tfm = crop_and_resize(-50, 0, 100, 100, 100, 100, (50, 50))
    out = tfm.apply_image(image)
    assert out.shape == (50, 50, 3)
    assert (out[:, :24] == 0).all() and (out[:, 26:] == 255).all()
    np.testing.assert_allclose(tfm.apply_box(np.array([[0.0, 0, 50, 100]])), [[25, 0, 50, 50]])


def test_eroded_union():
    boxes = np.array([[0, 0, 10, 20], [50, 50, 60, 100]], dtype=np.float32)
    np.testing.assert_allclose(eroded_union(boxes, 0.1), [1, 2, 59, 95])
    np.testing.assert_allclose(eroded_union(boxes, 0.0), [0, 0, 60, 100])


def test_focused_crop_contains_the_chosen_box():
    rng = np.random.RandomState(0)
    np.random.seed(0)
    for _ in range(200):
        h, w = rng.randint(64, 600, size=2)
        x0, y0 = rng.uniform(0, w - 10), rng.uniform(0, h - 10)
        box = np.array([[x0, y0, rng.uniform(x0 + 5, w), rng.uniform(y0 + 5, h)]], dtype=np.float32)
        image = np.zeros((h, w, 3), np.uint8)
        out, out_box, _ = augment([RandomFocusedCrop(128)], image, box)
        assert out.shape == (128, 128, 3)
        assert (out_box[0, :2] >= -1e-3).all() and (out_box[0, 2:] <= 128 + 1e-3).all(), (h, w, box, out_box)
        side = max(128, np.ceil(box[0, 2]) - np.floor(box[0, 0]), np.ceil(box[0, 3]) - np.floor(box[0, 1]))
        np.testing.assert_allclose(out_box[0, 2] - out_box[0, 0], (box[0, 2] - box[0, 0]) * 128 / side, rtol=1e-4)


def test_focused_crop_keeps_one_whole_box_among_many():
    np.random.seed(0)
    image = painted_scene()
    for _ in range(50):
        _, boxes, _ = augment([RandomFocusedCrop(64)], image, SCENE_BOXES)
        inside = (boxes[:, :2] >= -1e-3).all(axis=1) & (boxes[:, 2:] <= 64 + 1e-3).all(axis=1)
        assert inside.any()


def test_bbox_safe_crop_contains_all_eroded_boxes():
    np.random.seed(0)
    rng = np.random.RandomState(1)
    for _ in range(200):
        h, w = rng.randint(64, 600, size=2)
        n = rng.randint(1, 5)
        xy = rng.uniform(0, [w - 8, h - 8], size=(n, 2))
        boxes = np.concatenate([xy, rng.uniform(xy + 4, [w, h])], axis=1).astype(np.float32)
        out, out_boxes, _ = augment([RandomBBoxSafeCrop(96, 0.1)], np.zeros((h, w, 3), np.uint8), boxes)
        assert out.shape == (96, 96, 3)
        union = eroded_union(out_boxes, 0.1)
        assert union[0] >= -1e-3 and union[1] >= -1e-3 and union[2] <= 96 + 1e-3 and union[3] <= 96 + 1e-3


def test_bbox_safe_crop_varies_its_window():
    np.random.seed(0)
    image = np.zeros((400, 400, 3), np.uint8)
    box = np.array([[180, 180, 220, 220]], dtype=np.float32)
    widths = [np.diff(augment([RandomBBoxSafeCrop(100, 0.0)], image, box)[1][0, ::2])[0] for _ in range(100)]
    # The box spans 40 of a 40..400 px window resized to 100: width in [10, 100].
    assert min(widths) < 20 and max(widths) > 40 and all(10 - 1e-3 <= v <= 100 + 1e-3 for v in widths)


def test_random_choice_is_fair():
    np.random.seed(0)
    choice = RandomChoice([CenteredPad(20), CenteredPad(30)])
    sizes = [choice(T.AugInput(np.zeros((10, 10, 3), np.uint8))).x1 for _ in range(1000)]
    share_20 = np.mean(np.array(sizes) == 5)
    assert 0.45 < share_20 < 0.55


@pytest.mark.parametrize("recipe", ["rrc2", "rrc_scale"])
def test_crop_recipes_output_crop_size(recipe):
    np.random.seed(0)
    cfg = small_input_cfg(TRAIN_AUG=recipe)
    augs = build_person_search_augmentation(cfg, True)
    assert type(augs[-1]) is T.RandomFlip
    for hw, boxes in [((240, 320), SCENE_BOXES), ((60, 40), np.zeros((0, 4), np.float32)),
                      ((240, 320), np.array([[0, 0, 320, 240]], np.float32))]:
        for _ in range(20):
            image, _, _ = augment(augs, np.zeros((*hw, 3), np.uint8), boxes)
            assert image.shape == (128, 128, 3)


def test_default_crop_recipe_pads_to_three_crops():
    cfg = get_ps_cfg()
    cfg.PS.INPUT.TRAIN_AUG = "rrc2"
    resize, pad, choice, flip = build_person_search_augmentation(cfg, True)
    assert (resize.short_edge_length, resize.max_size) == ((900, 900), 1500)
    assert pad.min_size == 3 * 512
    assert [type(a) for a in choice.augmentations] == [RandomFocusedCrop, RandomBBoxSafeCrop]
    assert flip.prob == 0.5
    cfg.PS.INPUT.TRAIN_AUG = "rrc_scale"
    scale, pad, _, _ = build_person_search_augmentation(cfg, True)
    assert scale.scale_range == (0.5, 2.0) and pad.min_size == 4 * 512


def test_unknown_recipe_is_rejected():
    with pytest.raises(ValueError, match="PS.INPUT.TRAIN_AUG"):
        build_person_search_augmentation(small_input_cfg(TRAIN_AUG="rrc3"), True)
    with pytest.raises(ValueError, match="PS.INPUT.TEST_AUG"):
        build_person_search_augmentation(small_input_cfg(TEST_AUG="rrc2"), False)


def _unify(augmentation, crop):
    """A person crop (whole image = the person) through `augmentation`: (canvas, its box [4])."""
    h, w = crop.shape[:2]
    canvas, boxes, _ = augment([augmentation], crop, np.array([[0, 0, w, h]], dtype=np.float32))
    return canvas, boxes[0]


def _assert_box_holds_the_crop(canvas, box, colour):
    x0, y0, x1, y1 = np.round(box).astype(int)
    inside = canvas[y0 + 1:y1 - 1, x0 + 1:x1 - 1].reshape(-1, 3)
    np.testing.assert_allclose(inside.mean(axis=0), colour, atol=1)
    outside = np.ones(canvas.shape[:2], dtype=bool)
    outside[max(y0 - 3, 0):y1 + 3, max(x0 - 3, 0):x1 + 3] = False  # the (antialiased) resize blurs the edge
    assert canvas[outside].max() == 0  # black everywhere else


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expand_resize_keeps_the_crops_box(seed):
    np.random.seed(seed)
    crop = np.full((60, 20, 3), PALETTE[1], dtype=np.uint8)
    canvas, box = _unify(ExpandResize((1.5, 3.0), (96, 128)), crop)
    assert canvas.shape[:2] == (96, 128)
    # The canvas is 1.5-3 x the crop on each side, resized to 128 x 96: the box's share of each side.
    assert 1 / 3 - 0.02 <= (box[2] - box[0]) / 128 <= 1 / 1.5 + 0.02
    assert 1 / 3 - 0.02 <= (box[3] - box[1]) / 96 <= 1 / 1.5 + 0.02
    _assert_box_holds_the_crop(canvas, box, PALETTE[1])


def test_expand_resize_at_a_fixed_ratio_gives_the_exact_share():
    np.random.seed(0)
    canvas, box = _unify(ExpandResize((2.0, 2.0), (80, 40)), np.full((40, 20, 3), 200, dtype=np.uint8))
    np.testing.assert_allclose([box[2] - box[0], box[3] - box[1]], [20, 40], atol=1e-4)


def test_random_paste_keeps_the_crops_size_and_box():
    np.random.seed(3)
    crop = np.full((50, 20, 3), PALETTE[2], dtype=np.uint8)
    canvas, box = _unify(RandomPaste((100, 120)), crop)
    assert canvas.shape[:2] == (100, 120)
    np.testing.assert_allclose([box[2] - box[0], box[3] - box[1]], [20, 50])
    _assert_box_holds_the_crop(canvas, box, PALETTE[2])


def test_random_paste_shrinks_a_crop_larger_than_the_canvas():
    np.random.seed(0)
    canvas, box = _unify(RandomPaste((50, 50)), np.full((200, 40, 3), 90, dtype=np.uint8))
    np.testing.assert_allclose([box[2] - box[0], box[3] - box[1]], [10, 50])


def test_unification_bad_input_errors():
    with pytest.raises(ValueError, match="canvas_ratio must satisfy 1 <= low"):
        ExpandResize((0.8, 2.0), (64, 64))
    empty = np.zeros((0, 10, 3), dtype=np.uint8)
    for augmentation in (ExpandResize((1.0, 2.0), (64, 64)), RandomPaste((64, 64))):
        with pytest.raises(ValueError, match="zero-size person crop"):
            augmentation.get_transform(empty)
