"""Tiny OLA training setups (CPU, seconds): the tiny SynthPS of train_fixtures with OLA's meta-architecture,
small crops and a clustering scaled to 8 scenes, and a copy of its training set with permuted identities."""
import copy
import os

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils import comm

from train_fixtures import build_trainer, register_tiny, sample_in_order, tiny_train_cfg


def ola_cfg(root, prefix, output_dir, **solver):
    """tiny_train_cfg as OLA: 8 scenes, batch 2 -> 4 iterations per epoch."""
    cfg = tiny_train_cfg(root, prefix, output_dir, **solver)
    cfg.MODEL.META_ARCHITECTURE = "OLA"
    cfg.MODEL.ROI_HEADS.NAME = "MemoryReIDStandardROIHeads"
    cfg.PS.OLA.CROP_SIZE = (32, 16)
    cfg.PS.OLA.CLUSTER.update(K1=4, K2=2, MIN_SAMPLES=2, EPS=0.6)
    cfg.PS.OLA.DMBE.NUM_HEADS = 2
    return cfg


def register_permuted(prefix, seed=0):
    """`<prefix>_train_permuted`: `<prefix>_train` with every person_id relabelled by a permutation
    (unlabeled -1 boxes get labels too, so nothing stays as it was). Returns its name."""
    name = f"{prefix}_train_permuted"
    if name in DatasetCatalog.list():
        return name
    source = f"{prefix}_train"

    def load():
        records = copy.deepcopy(DatasetCatalog.get(source))
        ids = sorted({a["person_id"] for r in records for a in r["annotations"]})
        mapping = dict(zip(ids, np.random.default_rng(seed).permutation(len(ids)).tolist()))
        for record in records:
            for annotation in record["annotations"]:
                annotation["person_id"] = 1000 + mapping[annotation["person_id"]]
        return records

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(**{k: v for k, v in MetadataCatalog.get(source).as_dict().items() if k != "name"})
    return name


def memory_state(trainer):
    """The OLA model's memories, labels and pseudo-label state as CPU tensors."""
    model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if k.startswith(("proposal_memory", "instance_memory", "pseudo_label_state"))}


def ola_ddp_main(cfg, root, prefix, state_dir):
    """Per-process entry of `launch`: train OLA with in-order sampling, save this rank's memories."""
    torch.set_num_threads(1)
    register_tiny(root, prefix)
    sample_in_order()
    trainer = build_trainer(cfg)
    trainer.train()
    torch.save(memory_state(trainer), os.path.join(state_dir, f"rank{comm.get_rank()}.pt"))
