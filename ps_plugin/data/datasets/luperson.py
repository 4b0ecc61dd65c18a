"""LUPerson-style unlabelled person crops (Fu et al. 2021) for hybrid pre-training.

On disk, under $DETECTRON2_DATASETS (default `datasets/`): `luperson/` holding crop images in
any sub-folders (e.g. a LUPerson-30k subset extracted from its lmdb). Registered:
`luperson_crops`: every crop is its own identity 0..N-1 ("instance_ids": True).
"""
import os

from .common import datasets_root
from .crops import load_unlabelled_crop_folder, register_crops


def register_luperson(root=None):
    """Register `luperson_crops`; `root` (default $DETECTRON2_DATASETS) is resolved at load time."""
    register_crops(
        "luperson_crops",
        lambda: load_unlabelled_crop_folder(os.path.join(root if root is not None else datasets_root(), "luperson")),
    )
