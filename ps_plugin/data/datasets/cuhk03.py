"""CUHK03 (Li et al. 2014) as labelled person crops for hybrid pre-training, in two layouts.

**CUHK03-NP** (Zhong et al. 2017's new protocol), under $DETECTRON2_DATASETS (default `datasets/`):
    cuhk03_np/labeled/bounding_box_train/0001_c1_1.png ...
    cuhk03_np/detected/bounding_box_train/0001_c1_1.png ...
Names follow Market-1501 (`<person id>_c<camera>_<index>.png`). Registered:
`cuhk03_np_labeled_train`, `cuhk03_np_detected_train` (767 identities each, renumbered 0..766).

**The original release** (`cuhk03_release.zip` unpacked), a MATLAB v7.3 (HDF5) file:
    cuhk03_release/cuhk-03.mat
It holds `labeled` and `detected` (the hand-drawn and the DPM-detected crops), each a 5 x 1 cell
with one matrix per camera pair: n_persons x 10 cells, 5 images of the person from the pair's first
camera then 5 from its second, empty cells where fewer exist. An image is H x W x 3 uint8 RGB. The
cell `testsets` holds the 20 classic test splits, each a 100 x 2 matrix of [pair, person] (1-based).

Records (mat73.py reads the file): identity = (pair, person), renumbered 0..K-1 in sorted order
(the same person seen by two camera pairs is two identities: the release does not link them);
camera_id = 2 * (pair - 1) + view (view 0 / 1 = the pair's first / second camera: 10 camera
views, the release does not say which physical cameras pairs share). Splits: "train" = the
classic protocol's training persons (every person but those of testsets{1}, the first test split:
1,367 identities for `labeled`), "all" = every person (1,467 labelled; for pre-training aimed at
another target). Registered: `cuhk03_mat_{labeled,detected}_{train,all}`.

The crops are not files, and the pre-training mapper reads a record's image from its file name.
So the first load decodes every crop of the cell into `cuhk03_release/images_<boxes>/` as PNG
(lossless; <pair>_<person>_<cell>.png) with an index.json that records the .mat's size and
modification time; later loads read the index and the files, and a changed .mat is decoded again.
The records are then ordinary crop records (crops.py) for every reader of them.
"""
import json
import logging
import os

import numpy as np
from PIL import Image

from .common import datasets_root, require_path
from .crops import load_labelled_crops, register_crops
from .market1501 import load_market_style_folder
from .mat73 import mat73_array, mat73_cell, mat73_is_empty, open_mat73

logger = logging.getLogger(__name__)

CUHK03_NP_BOXES = ("labeled", "detected")
CUHK03_MAT = os.path.join("cuhk03_release", "cuhk-03.mat")
CUHK03_MAT_FIX = "Unpack cuhk03_release.zip into $DETECTRON2_DATASETS (see datasets/README.md, cuhk03_release/)."
CUHK03_MAT_SPLITS = ("train", "all")
IMAGES_PER_VIEW = 5  # per person: 5 cells of the pair's first camera, then 5 of its second
CACHE_INDEX = "index.json"


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


def _crop_image(dataset, where):
    """[H, W, 3] uint8 of a stored image cell (HDF5 [3, W, H]); ValueError naming `where` otherwise."""
    image = mat73_array(dataset)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{where}: expected an H x W x 3 uint8 image, got a {image.dtype} array of shape {image.shape}.")
    return image


def iter_cuhk03_mat(mat, boxes):
    """Yield (pair, person, cell, image [H, W, 3] uint8) of cell array `boxes` of the open release:
    pair and person 1-based as in `testsets`, cell 0..9 (view = cell // 5); empty cells skipped."""
    for pair, pair_ref in enumerate(mat73_cell(mat, boxes), 1):
        refs = mat73_array(mat[pair_ref])
        if refs.ndim != 2 or refs.shape[1] != 2 * IMAGES_PER_VIEW:
            raise ValueError(
                f"{mat.filename}: {boxes}{{{pair}}} should be n_persons x {2 * IMAGES_PER_VIEW} cells, got {refs.shape}."
            )
        for person, row in enumerate(refs, 1):
            for cell, ref in enumerate(row):
                if not mat73_is_empty(mat[ref]):
                    yield pair, person, cell, _crop_image(mat[ref], f"{mat.filename}: {boxes}{{{pair}}}({person}, {cell + 1})")


def cuhk03_test_persons(mat, split=1):
    """{(pair, person)} of testsets{split} (1-based, as MATLAB indexes the 20 classic splits)."""
    refs = mat73_cell(mat, "testsets")
    if not 1 <= split <= len(refs):
        raise ValueError(f"{mat.filename}: testsets has {len(refs)} splits, asked for split {split}.")
    pairs = mat73_array(mat[refs[split - 1]])
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"{mat.filename}: testsets{{{split}}} should be n x 2 [pair, person], got {pairs.shape}.")
    return {(int(pair), int(person)) for pair, person in pairs}


def _source_stamp(mat_file):
    stat = os.stat(mat_file)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def decode_cuhk03_mat(mat, boxes, cache_dir):
    """Write the crops of `boxes` as PNG under `cache_dir` unless its index matches the open file;
    return [(file name, pair, person, cell)] in the order of iter_cuhk03_mat."""
    index_file = os.path.join(cache_dir, CACHE_INDEX)
    stamp = _source_stamp(mat.filename)
    if os.path.isfile(index_file):
        with open(index_file) as f:
            index = json.load(f)
        if index.get("source") == stamp:
            return [(os.path.join(cache_dir, name), *key) for name, *key in index["crops"]]
    logger.info(f"Decoding the '{boxes}' crops of {mat.filename} into {cache_dir} (once; later loads read the PNG files).")
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as e:
        raise OSError(f"Cannot write the decoded CUHK03 crops to '{cache_dir}' ({e}); pass a writable cache_root.") from e
    crops = []
    for pair, person, cell, image in iter_cuhk03_mat(mat, boxes):
        name = f"{pair}_{person:04d}_{cell + 1:02d}.png"
        Image.fromarray(image).save(os.path.join(cache_dir, name))
        crops.append((name, pair, person, cell))
    with open(index_file, "w") as f:
        json.dump({"source": stamp, "crops": crops}, f)
    return [(os.path.join(cache_dir, name), *key) for name, *key in crops]


def load_cuhk03_mat(mat_file, boxes, split="train", cache_dir=None):
    """Labelled crop records of the original release (see the module docstring).

    Args:
        mat_file: path of cuhk-03.mat.
        boxes: "labeled" or "detected".
        split: "train" (the classic protocol: persons of testsets{1} left out) or "all".
        cache_dir: where the crops are decoded; default `<folder of mat_file>/images_<boxes>`.
    """
    if boxes not in CUHK03_NP_BOXES or split not in CUHK03_MAT_SPLITS:
        raise ValueError(f"CUHK03 .mat: boxes must be one of {CUHK03_NP_BOXES} and split one of {CUHK03_MAT_SPLITS}.")
    cache_dir = cache_dir or os.path.join(os.path.dirname(mat_file), f"images_{boxes}")
    with open_mat73(mat_file, "CUHK03 release (cuhk-03.mat)", CUHK03_MAT_FIX) as mat:
        held_out = cuhk03_test_persons(mat) if split == "train" else set()
        crops = decode_cuhk03_mat(mat, boxes, cache_dir)
    entries = [
        (file_name, os.path.basename(file_name), (pair, person), 2 * (pair - 1) + cell // IMAGES_PER_VIEW)
        for file_name, pair, person, cell in crops
        if (pair, person) not in held_out
    ]
    if not entries:
        raise ValueError(f"{mat_file}: no '{boxes}' crop in split '{split}'.")
    return load_labelled_crops(entries)


def register_cuhk03_mat(root=None, cache_root=None):
    """Register `cuhk03_mat_{labeled,detected}_{train,all}`; `root` (default $DETECTRON2_DATASETS)
    is resolved at load time; crops are decoded under `cache_root` (default: beside the .mat)."""
    for boxes in CUHK03_NP_BOXES:
        for split in CUHK03_MAT_SPLITS:

            def load(boxes=boxes, split=split):
                mat_file = os.path.join(root if root is not None else datasets_root(), CUHK03_MAT)
                cache_dir = os.path.join(cache_root, f"images_{boxes}") if cache_root is not None else None
                return load_cuhk03_mat(mat_file, boxes, split, cache_dir)

            register_crops(f"cuhk03_mat_{boxes}_{split}", load)
