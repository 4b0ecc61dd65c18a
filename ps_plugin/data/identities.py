"""`IdentityMap`: the labeled person ids of each training set -> contiguous identity-table rows, and
`load_training_records`: DATASETS.TRAIN read once, with every person id replaced by its row.

Datasets number their people in their own way (CUHK-SYSU from 0, PRW from 1, MOT by track, with
gaps where box cleaning dropped a person). The OIM lookup table has one row per identity, so ids
must become rows: set k's distinct labeled ids, sorted, take rows offset_k, offset_k + 1, ...,
with offset_k the number of identities of the sets before it. Two sets that both start at id 0
therefore never share a row.
"""
import copy
import logging

import numpy as np

from detectron2.data import get_detection_dataset_dicts

from .datasets.common import IGNORE_REGIONS, UNLABELED

# The domain tags of PS.DATA.TRAIN_DOMAINS: labelled source data, unlabelled target data (LAID).
SOURCE, TARGET = "source", "target"

__all__ = ["SOURCE", "TARGET", "IdentityMap", "hide_annotations", "load_training_records", "subsample_images",
           "training_domains"]

logger = logging.getLogger(__name__)


class IdentityMap:
    """Rows of the identity tables for the labeled ids of an ordered list of training sets.

    A Detectron2 checkpointable (`state_dict` / `load_state_dict`): PersonSearchTrainer saves it in
    every checkpoint under "identities", so a checkpoint says which person each table row is.
    """

    def __init__(self, person_ids_by_set):
        """person_ids_by_set: ordered {dataset name: labeled person ids (any order, repeats allowed)}."""
        self.person_ids = {name: sorted({int(p) for p in ids}) for name, ids in person_ids_by_set.items()}
        self.offsets, offset = {}, 0
        for name, ids in self.person_ids.items():
            self.offsets[name] = offset
            offset += len(ids)
        self.num_rows = offset
        self._rows = {name: {pid: self.offsets[name] + i for i, pid in enumerate(ids)}
                      for name, ids in self.person_ids.items()}

    @classmethod
    def from_records(cls, records_by_set):
        """From ordered {dataset name: records}; annotations with person_id < 0 are unlabeled."""
        return cls({name: [a["person_id"] for r in records for a in r["annotations"] if a["person_id"] >= 0]
                    for name, records in records_by_set.items()})

    def row(self, dataset_name, person_id):
        """Table row of `person_id` in `dataset_name`; UNLABELED (-1) stays -1."""
        return UNLABELED if person_id < 0 else self._rows[dataset_name][int(person_id)]

    def relabel(self, dataset_name, records):
        """Copies of `records` whose labeled person_id is its table row; the dataset's own id is kept
        as "source_person_id"."""
        relabelled = []
        for record in records:
            record = copy.copy(record)
            record["annotations"] = [
                {**a, "person_id": self.row(dataset_name, a["person_id"]), "source_person_id": a["person_id"]}
                for a in record["annotations"]
            ]
            relabelled.append(record)
        return relabelled

    def state_dict(self):
        return {"datasets": list(self.person_ids), "person_ids": list(self.person_ids.values())}

    def load_state_dict(self, state):
        """Check that a checkpoint's identities are these (resume must not remap the table's rows)."""
        saved = IdentityMap(dict(zip(state["datasets"], state["person_ids"])))
        if saved != self:
            raise ValueError(
                f"The checkpoint's identity table ({saved.describe()}) differs from DATASETS.TRAIN's "
                f"({self.describe()}): the training sets or their annotations changed since it was written, "
                "so its table rows are other people. Resume with the same training data, or start a new "
                "OUTPUT_DIR (MODEL.WEIGHTS then loads the weights without that table)."
            )

    def __eq__(self, other):
        return isinstance(other, IdentityMap) and self.person_ids == other.person_ids

    def describe(self):
        """'name: N ids (rows a-b), ...'."""
        return ", ".join(f"{name}: {len(ids)} ids (rows {self.offsets[name]}-{self.offsets[name] + len(ids) - 1})"
                         for name, ids in self.person_ids.items()) or "no sets"


def training_domains(cfg):
    """{DATASETS.TRAIN name: "source" | "target"} from PS.DATA.TRAIN_DOMAINS (all "source" when empty);
    ValueError naming the key for a wrong length or an unknown tag."""
    names, tags = list(cfg.DATASETS.TRAIN), list(cfg.PS.DATA.TRAIN_DOMAINS)
    if not tags:
        return {name: SOURCE for name in names}
    if len(tags) != len(names):
        raise ValueError(f"PS.DATA.TRAIN_DOMAINS={tuple(tags)} must give one tag per DATASETS.TRAIN entry {tuple(names)}.")
    unknown = sorted(set(tags) - {SOURCE, TARGET})
    if unknown:
        raise ValueError(f"PS.DATA.TRAIN_DOMAINS: unknown tags {unknown}; use '{SOURCE}' (labelled) or '{TARGET}' (unlabelled).")
    return dict(zip(names, tags))


def hide_annotations(records, domain):
    """Copies of `records` tagged with `domain` and, for the unlabelled target domain, with no
    "annotations" nor "ignore_regions": target boxes and identities never reach the model (or the
    identity tables)."""
    hidden = []
    for record in records:
        record = {**record, "domain": domain}
        if domain == TARGET:
            record["annotations"] = []
            record.pop(IGNORE_REGIONS, None)
        hidden.append(record)
    return hidden


def subsample_images(records, fraction, seed, name="dataset"):
    """The first round(fraction * len(records)) records (at least 1) of a permutation drawn from `seed`,
    kept in their original order. The same seed gives nested subsets: the 20 % subset lies inside the
    60 % one. fraction 1 returns `records` itself."""
    if not 0 < fraction <= 1:
        raise ValueError(f"PS.DATA.TRAIN_IMAGE_FRACTION must lie in (0, 1], got {fraction}.")
    if fraction == 1:
        return records
    keep = max(int(round(fraction * len(records))), 1)
    chosen = np.sort(np.random.default_rng(seed).permutation(len(records))[:keep])
    logger.info(f"{name}: training on {keep} of its {len(records)} images (PS.DATA.TRAIN_IMAGE_FRACTION {fraction}).")
    return [records[i] for i in chosen]


def load_training_records(cfg):
    """(records, IdentityMap): every DATASETS.TRAIN set read once (Detectron2's
    get_detection_dataset_dicts, FILTER_EMPTY from cfg.PS.DATA), cut to PS.DATA.TRAIN_IMAGE_FRACTION of
    its images (`subsample_images`, PS.DATA.TRAIN_SUBSET_SEED), tagged with its PS.DATA.TRAIN_DOMAINS
    domain (a target set loses its annotations, `hide_annotations`), person ids replaced by table rows,
    concatenated in DATASETS.TRAIN order (a set named twice is read once and shares its rows)."""
    domains = training_domains(cfg)
    loaded = {}
    for name in cfg.DATASETS.TRAIN:
        if name not in loaded:
            filter_empty = cfg.PS.DATA.FILTER_EMPTY and domains[name] == SOURCE
            records = get_detection_dataset_dicts([name], filter_empty=filter_empty)
            records = subsample_images(records, cfg.PS.DATA.TRAIN_IMAGE_FRACTION, cfg.PS.DATA.TRAIN_SUBSET_SEED, name)
            loaded[name] = hide_annotations(records, domains[name]) if cfg.PS.DATA.TRAIN_DOMAINS else records
    identities = IdentityMap.from_records(loaded)
    logger.info(f"Identity table rows: {identities.describe()}")
    return [r for name in cfg.DATASETS.TRAIN for r in identities.relabel(name, loaded[name])], identities
