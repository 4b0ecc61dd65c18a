"""MSMT17 (Wei et al. 2018) as labelled person crops for hybrid pre-training.

On disk, under $DETECTRON2_DATASETS (default `datasets/`), as released (V1 or V2):
    msmt17/list_train.txt      lines `<pid folder>/<image name> <person id>`
    msmt17/train/0000/0000_000_01_0303morning_0015_0.jpg ...           (MSMT17_V1)
    msmt17/mask_train_v2/0000/0000_000_01_0303morning_0015_0.jpg ...   (MSMT17_V2)
The image name is `<pid>_<index>_<camera>_<date+time>_<frame>_<box>.jpg`. Registered:
`msmt17_train` (32,621 crops of 1,041 identities in V1; ids renumbered 0..K-1, camera_id = camera - 1).
"""
import os

from .common import datasets_root, require_path
from .crops import load_labelled_crops, register_crops

MSMT17_IMAGE_DIRS = ("train", "mask_train_v2")


def msmt17_camera(image_name, list_file):
    """Camera index (from 0) of an MSMT17 image name; ValueError naming the list file if malformed."""
    fields = os.path.basename(image_name).split("_")
    if len(fields) < 3 or not fields[2].isdigit():
        raise ValueError(f"{list_file}: '{image_name}' is not an MSMT17 name (<pid>_<index>_<camera>_...).")
    return int(fields[2]) - 1


def read_msmt17_list(list_file):
    """[(relative image path, person id)] of an MSMT17 list file; ValueError naming the line if malformed."""
    entries = []
    with open(require_path(list_file, "MSMT17 list", "See datasets/README.md (msmt17/).")) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                raise ValueError(f"{list_file}:{number}: expected `<image path> <person id>`, got {line.strip()!r}.")
            entries.append((fields[0], int(fields[1])))
    return entries


def msmt17_image_dir(base):
    """`train/` (V1) or `mask_train_v2/` (V2) under `base`; FileNotFoundError naming both otherwise."""
    for name in MSMT17_IMAGE_DIRS:
        if os.path.isdir(os.path.join(base, name)):
            return os.path.join(base, name)
    raise FileNotFoundError(f"MSMT17 images not found: expected one of {MSMT17_IMAGE_DIRS} in '{base}'.")


def load_msmt17(base, split="train"):
    """Labelled crop records of `<base>/list_<split>.txt`."""
    list_file = os.path.join(base, f"list_{split}.txt")
    entries = read_msmt17_list(list_file)
    image_dir = msmt17_image_dir(base)
    return load_labelled_crops(
        [(os.path.join(image_dir, path), path, pid, msmt17_camera(path, list_file)) for path, pid in entries]
    )


def register_msmt17(root=None):
    """Register `msmt17_train`; `root` (default $DETECTRON2_DATASETS) is resolved at load time."""
    register_crops(
        "msmt17_train", lambda: load_msmt17(os.path.join(root if root is not None else datasets_root(), "msmt17"))
    )
