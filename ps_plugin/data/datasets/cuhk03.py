"""CUHK03 (Li et al. 2014) in the CUHK03-NP layout (Zhong et al. 2017's new protocol) as labelled
person crops for hybrid pre-training.

On disk, under $DETECTRON2_DATASETS (default `datasets/`):
    cuhk03_np/labeled/bounding_box_train/0001_c1_1.png ...
    cuhk03_np/detected/bounding_box_train/0001_c1_1.png ...
Names follow Market-1501 (`<person id>_c<camera>_<index>.png`). Registered:
`cuhk03_np_labeled_train`, `cuhk03_np_detected_train` (767 identities each, renumbered 0..766).
"""
import os

from .common import datasets_root, require_path
from .crops import register_crops
from .market1501 import load_market_style_folder

CUHK03_NP_BOXES = ("labeled", "detected")


def register_cuhk03_np(root=None):
    """Register the CUHK03-NP training crops; `root` (default $DETECTRON2_DATASETS) is resolved at load time."""
    for boxes in CUHK03_NP_BOXES:

        def load(boxes=boxes):
            base = os.path.join(root if root is not None else datasets_root(), "cuhk03_np", boxes)
            folder = require_path(
                os.path.join(base, "bounding_box_train"), f"CUHK03-NP {boxes} training crops",
                "See datasets/README.md (cuhk03_np/).",
            )
            return load_market_style_folder(folder)

        register_crops(f"cuhk03_np_{boxes}_train", load)
