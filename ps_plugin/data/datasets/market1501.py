"""Market-1501 (Zheng et al. 2015) as labelled person crops for hybrid pre-training.

On disk, under $DETECTRON2_DATASETS (default `datasets/`):
    market1501/bounding_box_train/0002_c1s1_000451_03.jpg ...
The name is `<person id>_c<camera><sequence>_<frame>_<box>.jpg`; person id -1 (junk) and 0000
(distractors) are skipped. Registered: `market1501_train` (12,936 crops of 751 identities, ids
renumbered 0..750, camera_id = camera - 1). The same naming serves CUHK03-NP (cuhk03.py).
"""
import os
import re

from .common import datasets_root, require_path
from .crops import list_images, load_labelled_crops, register_crops

MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")


def parse_market_name(file_name):
    """(person id, camera index from 0) of a Market-style crop name; ValueError naming the file if it does not match."""
    match = MARKET_NAME.match(os.path.basename(file_name))
    if match is None:
        raise ValueError(
            f"'{file_name}' is not named like a Market-1501 crop (<pid>_c<camera>..., e.g. 0002_c1s1_000451_03.jpg)."
        )
    return int(match.group(1)), int(match.group(2)) - 1


def load_market_style_folder(folder):
    """Labelled crop records of a folder of Market-style names (junk -1 and distractor 0 skipped)."""
    entries = []
    for file_name in list_images(folder):
        pid, camera = parse_market_name(file_name)
        if pid > 0:
            entries.append((file_name, os.path.relpath(file_name, folder), pid, camera))
    return load_labelled_crops(entries)


def register_market1501(root=None):
    """Register `market1501_train`; `root` (default $DETECTRON2_DATASETS) is resolved at load time."""

    def load():
        base = os.path.join(root if root is not None else datasets_root(), "market1501")
        folder = require_path(
            os.path.join(base, "bounding_box_train"), "Market-1501 training crops", "See datasets/README.md (market1501/)."
        )
        return load_market_style_folder(folder)

    register_crops("market1501_train", load)
