"""Tiny LAID training setups (CPU, seconds): the tiny SynthPS of train_fixtures, its training scenes as the
labelled source and its gallery scenes as the unlabelled target, and a copy of the target set whose
annotations are shuffled (boxes moved between images, identities permuted)."""
import copy

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog

from train_fixtures import tiny_train_cfg


def laid_cfg(root, prefix, output_dir, target=None, **solver):
    """tiny_train_cfg as LAID: source `<prefix>_train` (8 scenes), target `target` (default
    `<prefix>_gallery`, 4 scenes), 1 + 1 images per batch, pseudo labels from target epoch 0, CAIM and
    clustering thresholds a random tiny model reaches."""
    cfg = tiny_train_cfg(root, prefix, output_dir, **solver)
    cfg.MODEL.META_ARCHITECTURE = "LAID"
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "DifferentiableObjectnessRPN"
    cfg.MODEL.ROI_HEADS.NAME = "MemoryReIDStandardROIHeads"
    cfg.PS.REID.NAE = True
    cfg.DATASETS.TRAIN = (f"{prefix}_train", target or f"{prefix}_gallery")
    cfg.PS.DATA.TRAIN_DOMAINS = ("source", "target")
    cfg.PS.LAID.TARGET_REID_START = 0
    cfg.PS.LAID.CAIM.SCORE_THRESH = 0.3
    cfg.PS.LAID.HARD_NEGATIVE.MIN_SCORE = 0.1
    cfg.PS.LAID.CLUSTER.update(K1=4, K2=2, MIN_SAMPLES=2, EPS=0.6)
    return cfg


def register_shuffled_target(prefix, seed=0):
    """`<prefix>_gallery_shuffled`: `<prefix>_gallery` with the annotation lists moved between images
    (a seeded permutation) and every person id replaced. Returns its name."""
    name = f"{prefix}_gallery_shuffled"
    if name in DatasetCatalog.list():
        return name
    source = f"{prefix}_gallery"

    def load():
        records = copy.deepcopy(DatasetCatalog.get(source))
        order = np.random.default_rng(seed).permutation(len(records))
        annotations = [records[i]["annotations"] for i in order]
        for record, moved in zip(records, annotations):
            record["annotations"] = [{**a, "person_id": 500 + k} for k, a in enumerate(moved)]
            record["dataset_name"] = name
        return records

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(**{k: v for k, v in MetadataCatalog.get(source).as_dict().items() if k != "name"})
    return name
