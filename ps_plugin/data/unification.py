"""Data unification of hybrid pre-training (Tian et al. 2024, Fig. 3b): a crop record
(datasets/crops.py: "crop_box" + one annotation) becomes a scene before the usual augmentations.

`HybridDatasetMapper` is `PersonSearchDatasetMapper` whose image reading cuts the crop out of its
file (a crop folder's whole image, or a person box of a scene) and puts it on a canvas with
PS.PRETRAIN.UNIFICATION ("expand_resize" or "random_paste", data/transforms.py); the annotation
follows. Unification runs once per record, before the k views are augmented (Fig. 3a: unify,
then Aug_1 and Aug_2), so both views show the same canvas. Scene records pass through unchanged.
"""
import math

import numpy as np
from detectron2.config import configurable
from detectron2.structures import BoxMode

from .datasets.crops import CROP_BOX
from .mapper import PersonSearchDatasetMapper
from .transforms import ExpandResize, RandomPaste

__all__ = ["HybridDatasetMapper", "build_unification"]

UNIFICATIONS = ("expand_resize", "random_paste")


def build_unification(cfg):
    """The Augmentation of cfg.PS.PRETRAIN.UNIFICATION."""
    node = cfg.PS.PRETRAIN
    if node.UNIFICATION == "expand_resize":
        return ExpandResize(node.CANVAS_RATIO, node.CANVAS_SIZE)
    if node.UNIFICATION == "random_paste":
        return RandomPaste(node.CANVAS_SIZE)
    raise ValueError(f"cfg.PS.PRETRAIN.UNIFICATION = {node.UNIFICATION!r}; use one of {UNIFICATIONS}.")


def crop_window(crop_box, height, width):
    """Integer window (x0, y0, x1, y1) holding `crop_box` (floor / ceil), clipped to the image."""
    x0, y0 = max(0, math.floor(crop_box[0])), max(0, math.floor(crop_box[1]))
    return x0, y0, min(width, math.ceil(crop_box[2])), min(height, math.ceil(crop_box[3]))


class HybridDatasetMapper(PersonSearchDatasetMapper):
    """PersonSearchDatasetMapper + data unification of crop records (module docstring)."""

    @configurable
    def __init__(self, is_train, *, unification, **kwargs):
        """unification: an Augmentation taking a crop image [h, w, C] (ExpandResize, RandomPaste)."""
        super().__init__(is_train, **kwargs)
        self.unification = unification

    @classmethod
    def from_config(cls, cfg, is_train=True):
        ret = super().from_config(cfg, is_train)
        ret["unification"] = build_unification(cfg)
        return ret

    def _read_image(self, record):
        """The image of a scene record, or the canvas of a crop record (whose annotation is moved
        onto the canvas in place)."""
        image = super()._read_image(record)
        if CROP_BOX not in record:
            return image
        x0, y0, x1, y1 = crop_window(record[CROP_BOX], *image.shape[:2])
        crop = image[y0:y1, x0:x1]
        transform = self.unification.get_transform(crop)
        annotation = record["annotations"][0]
        box = BoxMode.convert(annotation["bbox"], annotation["bbox_mode"], BoxMode.XYXY_ABS)
        box = np.asarray(box, dtype=np.float64).reshape(1, 4) - [x0, y0, x0, y0]
        annotation["bbox"] = transform.apply_box(box)[0].tolist()
        annotation["bbox_mode"] = BoxMode.XYXY_ABS
        return transform.apply_image(crop)
