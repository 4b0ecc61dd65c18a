"""Person-search augmentations (SPNet supplementary Sec. 8 "Image Augmentation").

Recipes, selected by `cfg.PS.INPUT.TRAIN_AUG` / `TEST_AUG`:

- "resize":    ResizeShortestEdge(INPUT.MIN_SIZE_*, INPUT.MAX_SIZE_*) (+ flip when training).
- "wrs":       window resize: short side WINDOW_MIN_SIZE (900), long side capped at
               WINDOW_MAX_SIZE (1500). This is exactly Detectron2's ResizeShortestEdge with
               max_size, so it is reused, not rewritten (+ flip when training).
- "rrc2":      wrs -> CenteredPad(3 x crop) -> one of {RandomFocusedCrop, RandomBBoxSafeCrop}
               (p = 1/2 each) -> flip. Output: CROP_SIZE x CROP_SIZE.
- "rrc_scale": RandomScale(SCALE_RANGE) -> CenteredPad(4 x crop) -> the same crops -> flip.

The centred black padding (authors' code: PadIfNeeded to 3 x crop / 4 x crop before the crop)
changes what the crops can produce, so it is kept: the bbox-safe crop may then extend into the
black border (a zoom-out: people become smaller than at wrs scale), and the focused crop may place
its box anywhere in the window even when the box touches the image border.
All augmentations draw from `np.random`, which Detectron2 seeds per data-loader worker.
"""
import math

import numpy as np
from detectron2.data import transforms as T
from PIL import Image

__all__ = [
    "RandomScale",
    "CenteredPad",
    "RandomFocusedCrop",
    "RandomBBoxSafeCrop",
    "RandomChoice",
    "ExpandResize",
    "RandomPaste",
    "crop_and_resize",
    "eroded_union",
    "build_person_search_augmentation",
]

TRAIN_RECIPES = ("resize", "wrs", "rrc2", "rrc_scale")
TEST_RECIPES = ("resize", "wrs")
# Side of the centred canvas the crops sample from, in crop sizes (authors' code:
# get_transform_rrc2 pads to 3 x crop, the rrc_scale transform to 4 x crop).
CROP_CANVAS_FACTOR = {"rrc2": 3, "rrc_scale": 4}


def crop_and_resize(x0, y0, crop_w, crop_h, image_w, image_h, out_hw):
    """Transform cutting the window (x0, y0, crop_w, crop_h) out of an image_h x image_w image and
    resizing it to out_hw = (h, w) without keeping the aspect ratio.

    The window may extend outside the image; the outside is padded black first.
    Returns a TransformList [PadTransform?, CropTransform, ResizeTransform?].
    """
    pad_left, pad_top = max(0, -x0), max(0, -y0)
    pad_right, pad_bottom = max(0, x0 + crop_w - image_w), max(0, y0 + crop_h - image_h)
    tfms = []
    if pad_left or pad_top or pad_right or pad_bottom:
        tfms.append(T.PadTransform(pad_left, pad_top, pad_right, pad_bottom, image_w, image_h, pad_value=0))
    padded_w, padded_h = image_w + pad_left + pad_right, image_h + pad_top + pad_bottom
    tfms.append(T.CropTransform(x0 + pad_left, y0 + pad_top, crop_w, crop_h, padded_w, padded_h))
    if (crop_h, crop_w) != tuple(out_hw):
        tfms.append(T.ResizeTransform(crop_h, crop_w, out_hw[0], out_hw[1], Image.BILINEAR))
    return T.TransformList(tfms)


def eroded_union(boxes, erosion_rate):
    """Smallest box holding every box shrunk by `erosion_rate` x (w, h) on each side.

    Args:
        boxes: float array [N, 4] XYXY, N >= 1.
    Returns:
        float array [4] XYXY.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    size = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
    eroded = boxes + erosion_rate * size * np.array([1, 1, -1, -1])
    return np.concatenate([eroded[:, :2].min(axis=0), eroded[:, 2:].max(axis=0)])


def _random_start(lowest, highest, image_extent, side):
    """Random integer start of a window of `side` pixels along one axis whose start must lie in
    [lowest, highest] (to hold a box); it also stays inside the image where the image is larger
    than the window, and covers the whole image where it is smaller."""
    low = max(lowest, min(0, image_extent - side))
    high = min(highest, max(0, image_extent - side))
    return int(np.random.randint(low, high + 1))


class RandomScale(T.Augmentation):
    """Resize by a factor drawn uniformly from `scale_range` = (low, high), both sides alike.

    rrc_scale's random scaling: the paper's 0.5x-2x; the authors' code draws from 1.5x-3x.
    """

    def __init__(self, scale_range, interp=Image.BILINEAR):
        super().__init__()
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"RandomScale: scale_range must satisfy 0 < low <= high, got {scale_range}")
        self.scale_range = tuple(scale_range)
        self.interp = interp

    def get_transform(self, image):
        h, w = image.shape[:2]
        factor = np.random.uniform(self.scale_range[0], self.scale_range[1])
        new_h, new_w = max(1, int(h * factor + 0.5)), max(1, int(w * factor + 0.5))
        return T.ResizeTransform(h, w, new_h, new_w, self.interp)


class CenteredPad(T.Augmentation):
    """Pad with black, centred, so that both sides are at least `min_size` (no-op otherwise)."""

    def __init__(self, min_size):
        super().__init__()
        self._init(locals())

    def get_transform(self, image):
        h, w = image.shape[:2]
        pad_w, pad_h = max(0, self.min_size - w), max(0, self.min_size - h)
        if pad_w == 0 and pad_h == 0:
            return T.NoOpTransform()
        return T.PadTransform(pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2, w, h, pad_value=0)


class RandomFocusedCrop(T.Augmentation):
    """Square crop around one randomly chosen box, resized to crop_size x crop_size.

    The window side is max(crop_size, box w, box h) (box extents rounded outwards), so the whole
    chosen box is inside; its position is uniform among the windows that hold the box and stay in
    the image. Other boxes may be cut or dropped. Without boxes: a uniformly placed
    crop_size x crop_size window.
    """

    def __init__(self, crop_size):
        super().__init__()
        self._init(locals())

    def get_transform(self, image, boxes):
        h, w = image.shape[:2]
        if len(boxes) == 0:
            side = self.crop_size
            x0 = _random_start(-math.inf, math.inf, w, side)
            y0 = _random_start(-math.inf, math.inf, h, side)
        else:
            box = boxes[np.random.randint(len(boxes))]
            bx0, by0 = math.floor(box[0]), math.floor(box[1])
            bx1, by1 = math.ceil(box[2]), math.ceil(box[3])
            side = max(self.crop_size, bx1 - bx0, by1 - by0)
            x0 = _random_start(bx1 - side, bx0, w, side)
            y0 = _random_start(by1 - side, by0, h, side)
        return crop_and_resize(x0, y0, side, side, w, h, (self.crop_size, self.crop_size))


class RandomBBoxSafeCrop(T.Augmentation):
    """Random crop holding every box (each eroded by `erosion_rate`), resized to
    crop_size x crop_size without keeping the aspect ratio.

    Each side of the window lies uniformly between the eroded union of the boxes and the image
    border. Without boxes: a window of random height in [(1 - erosion_rate) h, h] with the image's
    aspect ratio, uniformly placed.
    """

    def __init__(self, crop_size, erosion_rate=0.1):
        super().__init__()
        self._init(locals())

    def get_transform(self, image, boxes):
        h, w = image.shape[:2]
        if len(boxes) == 0:
            crop_h = np.random.randint(int(h * (1 - self.erosion_rate)), h + 1)
            crop_w = max(1, min(w, int(crop_h * w / h + 0.5)))
            x0, y0 = np.random.randint(w - crop_w + 1), np.random.randint(h - crop_h + 1)
            x1, y1 = x0 + crop_w, y0 + crop_h
        else:
            ux0, uy0, ux1, uy1 = np.clip(eroded_union(boxes, self.erosion_rate), 0, [w, h, w, h])
            x0, y0 = math.floor(ux0 * np.random.rand()), math.floor(uy0 * np.random.rand())
            x1 = max(x0 + 1, math.ceil(ux1 + (w - ux1) * np.random.rand()))
            y1 = max(y0 + 1, math.ceil(uy1 + (h - uy1) * np.random.rand()))
        return crop_and_resize(int(x0), int(y0), int(x1 - x0), int(y1 - y0), w, h, (self.crop_size, self.crop_size))


class RandomChoice(T.Augmentation):
    """Apply one augmentation picked at random (albumentations' OneOf); uniform by default."""

    def __init__(self, augmentations, probs=None):
        super().__init__()
        probs = np.full(len(augmentations), 1 / len(augmentations)) if probs is None else np.asarray(probs)
        self.augmentations = list(augmentations)
        self.probs = probs / probs.sum()

    def __call__(self, aug_input):
        index = np.random.choice(len(self.augmentations), p=self.probs)
        return self.augmentations[index](aug_input)

    def __repr__(self):
        return f"RandomChoice({self.augmentations}, probs={self.probs.tolist()})"

    __str__ = __repr__


def _window_resize(cfg):
    return T.ResizeShortestEdge(cfg.PS.INPUT.WINDOW_MIN_SIZE, cfg.PS.INPUT.WINDOW_MAX_SIZE, "choice")


def _random_crops(cfg, recipe):
    crop = cfg.PS.INPUT.CROP_SIZE
    return [
        CenteredPad(CROP_CANVAS_FACTOR[recipe] * crop),
        RandomChoice([RandomFocusedCrop(crop), RandomBBoxSafeCrop(crop, cfg.PS.INPUT.BBOX_SAFE_EROSION)]),
    ]


def _check_recipe(recipe, allowed, key):
    if recipe not in allowed:
        raise ValueError(f"cfg.{key} = {recipe!r} is not a person-search augmentation recipe; use one of {allowed}.")


def build_person_search_augmentation(cfg, is_train):
    """Augmentations of recipe cfg.PS.INPUT.TRAIN_AUG (is_train) or TEST_AUG. Returns list[Augmentation].

    Boxed augmentations (the rrc crops) read `boxes` from the AugInput.
    """
    if not is_train:
        recipe = cfg.PS.INPUT.TEST_AUG
        _check_recipe(recipe, TEST_RECIPES, "PS.INPUT.TEST_AUG")
        if recipe == "wrs":
            return [_window_resize(cfg)]
        return [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice")]

    recipe = cfg.PS.INPUT.TRAIN_AUG
    _check_recipe(recipe, TRAIN_RECIPES, "PS.INPUT.TRAIN_AUG")
    if recipe == "resize":
        augs = [
            T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING)
        ]
    elif recipe == "wrs":
        augs = [_window_resize(cfg)]
    elif recipe == "rrc2":
        augs = [_window_resize(cfg)] + _random_crops(cfg, recipe)
    else:
        augs = [RandomScale(cfg.PS.INPUT.SCALE_RANGE)] + _random_crops(cfg, recipe)
    return augs + [T.RandomFlip(prob=cfg.PS.INPUT.FLIP_PROB, horizontal=True, vertical=False)]


class ExpandResize(T.Augmentation):
    """Hybrid pre-training's "expand_resize" (Tian et al. 2024, Fig. 3b, Table 4): place a person
    crop at a random position of a canvas `rw` x its width by `rh` x its height (rw, rh drawn
    uniformly and independently from `canvas_ratio` = (low, high), low >= 1, so the canvas has a
    random aspect ratio), then resize the canvas to `out_hw` = (h, w). The crop's full-image box
    follows the transform, so it stays the person's box on the canvas. Padding is black.
    """

    def __init__(self, canvas_ratio, out_hw, interp=Image.BILINEAR):
        super().__init__()
        if not 1 <= canvas_ratio[0] <= canvas_ratio[1]:
            raise ValueError(
                f"expand_resize: canvas_ratio must satisfy 1 <= low <= high (a canvas at least as large as "
                f"the crop), got {tuple(canvas_ratio)}; set PS.PRETRAIN.CANVAS_RATIO."
            )
        self.canvas_ratio = tuple(canvas_ratio)
        self.out_hw = tuple(out_hw)
        self.interp = interp

    def get_transform(self, image):
        h, w = _crop_size(image)
        canvas_w = math.ceil(w * np.random.uniform(*self.canvas_ratio))
        canvas_h = math.ceil(h * np.random.uniform(*self.canvas_ratio))
        x0, y0 = np.random.randint(canvas_w - w + 1), np.random.randint(canvas_h - h + 1)
        return crop_and_resize(-int(x0), -int(y0), canvas_w, canvas_h, w, h, self.out_hw)


class RandomPaste(T.Augmentation):
    """Hybrid pre-training's "random_paste" (Table 4): paste a person crop at a uniformly random
    position of a black `out_hw` = (h, w) canvas; a crop larger than the canvas is first scaled down,
    keeping its aspect ratio, to fit. The crop's full-image box follows the transform."""

    def __init__(self, out_hw, interp=Image.BILINEAR):
        super().__init__()
        self.out_hw = tuple(out_hw)
        self.interp = interp

    def get_transform(self, image):
        h, w = _crop_size(image)
        out_h, out_w = self.out_hw
        scale = min(1.0, out_h / h, out_w / w)
        new_h, new_w = max(1, int(h * scale)), max(1, int(w * scale))
        x0, y0 = np.random.randint(out_w - new_w + 1), np.random.randint(out_h - new_h + 1)
        tfms = [T.ResizeTransform(h, w, new_h, new_w, self.interp)] if scale < 1 else []
        tfms.append(T.PadTransform(int(x0), int(y0), out_w - new_w - x0, out_h - new_h - y0, new_w, new_h, pad_value=0))
        return T.TransformList(tfms)


def _crop_size(image):
    """(h, w) of a person crop; ValueError for a zero-size crop."""
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"Data unification got a zero-size person crop ({h} x {w} pixels): check the crop's box.")
    return h, w
