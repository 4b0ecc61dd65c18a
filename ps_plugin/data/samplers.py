"""A training stream that can resume at any iteration, with per-sample augmentation seeds.

Global stream position p (0, 1, 2, ...) picks both the image and the augmentation randomness:
iteration i of a run with total batch B uses positions [i*B, (i+1)*B); rank r of R takes the
slice [i*B + r*B/R, i*B + (r+1)*B/R). So a resumed run, and a multi-process run, see exactly
the samples (and augmentations) an uninterrupted single-process run over the same global batch
sees, for any DATALOADER.NUM_WORKERS, as long as aspect-ratio grouping is off.

Detectron2 shards the sampler over loader workers (worker w takes elements w, w+W, ...) and the
DataLoader returns the workers' batches round-robin; the sampler emits positions in the order
that makes the k-th batch of worker w exactly iteration start + k*W + w.
"""
import math
import random
from fractions import Fraction

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from detectron2.utils import comm


class StreamPositionSampler(Sampler):
    """Infinite sampler yielding this rank's global stream positions from `start_iter` on.

    Element e goes to loader worker w = e % W as its t = e // W-th element, i.e. element
    j = t % b of its batch k = t // b, which the DataLoader returns as iteration
    i = start_iter + k*W + w; the element is position i*B + rank*b + j (B global, b local batch).
    """

    def __init__(self, total_batch_size, start_iter=0, num_workers=0):
        self.world_size = comm.get_world_size()
        self.rank = comm.get_rank()
        if total_batch_size % self.world_size:
            raise ValueError(f"SOLVER.IMS_PER_BATCH={total_batch_size} must be divisible by the {self.world_size} processes")
        self.total_batch_size = total_batch_size
        self.local_batch_size = total_batch_size // self.world_size
        self.start_iter = start_iter
        self.num_workers = max(num_workers, 1)

    def position(self, element):
        """Global stream position of the sampler's `element`-th output."""
        worker, t = element % self.num_workers, element // self.num_workers
        batch, j = divmod(t, self.local_batch_size)
        iteration = self.start_iter + batch * self.num_workers + worker
        return iteration * self.total_batch_size + self.rank * self.local_batch_size + j

    def __iter__(self):
        element = 0
        while True:
            yield self.position(element)
            element += 1


class ShuffledStreamDataset(Dataset):
    """Maps a stream position to a record: epoch e = p // n is a seeded permutation of the records.

    Each returned record is a shallow copy carrying "stream_seed", the seed `SeededMapper` uses.
    """

    def __init__(self, records, seed=0, shuffle=True):
        if not records:
            raise ValueError("The training set is empty: check DATASETS.TRAIN and the dataset folders")
        self.records = records
        self.seed = seed
        self.shuffle = shuffle
        self._epoch, self._order = -1, None

    def __len__(self):
        return len(self.records)

    def _order_of_epoch(self, epoch):
        if epoch != self._epoch:
            n = len(self.records)
            rng = np.random.default_rng([self.seed, epoch])
            self._order = rng.permutation(n) if self.shuffle else np.arange(n)
            self._epoch = epoch
        return self._order

    def __getitem__(self, position):
        n = len(self.records)
        index = self._order_of_epoch(position // n)[position % n]
        record = dict(self.records[index])
        record["stream_seed"] = int(np.random.SeedSequence([self.seed, position]).generate_state(1)[0])
        return record


class SeededMapper:
    """Wraps a mapper: seeds numpy's and Python's RNG from the record's "stream_seed" first."""

    def __init__(self, mapper):
        self.mapper = mapper

    def __call__(self, record):
        seed = record.pop("stream_seed")
        np.random.seed(seed)
        random.seed(seed)
        return self.mapper(record)


def rng_state():
    """This process's torch / numpy / python RNG states (checkpointed for an exact resume).

    Only tensors and Python scalars / tuples, so `torch.load(weights_only=True)` (the default of
    torch >= 2.6, which Detectron2's checkpointer uses) reads the checkpoint back.
    """
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian)
    return {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}


def set_rng_state(state):
    """Restore a state from `rng_state()`."""
    kind, keys, position, has_gauss, cached_gaussian = state["numpy"]
    torch.set_rng_state(state["torch"])
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    random.setstate(state["python"])


def integer_weights(ratios):
    """Positive ratios (e.g. (2, 1, 1) or (0.5, 0.25, 0.25)) -> the smallest integer weights in the same
    proportion (ratios read as fractions with denominators up to 100). ValueError for a ratio <= 0."""
    if not ratios or any(r <= 0 for r in ratios):
        raise ValueError(f"Dataset ratios must be positive, one per training dataset; got {tuple(ratios)}.")
    fractions = [Fraction(str(r)).limit_denominator(100) for r in ratios]
    denominator = math.lcm(*(f.denominator for f in fractions))
    weights = [int(f * denominator) for f in fractions]
    divisor = math.gcd(*weights)
    return [w // divisor for w in weights]


class MixedStreamDataset(Dataset):
    """Maps a stream position to a record of one of N sources, mixed in fixed integer ratios.

    Positions form cycles of C = sum(w) positions; cycle c holds w_s positions of source s, in an
    order drawn per cycle from (seed, c) (grouped by source, in source order, with shuffle=False).
    The k-th position of source s (k = c * w_s + its rank among s's positions of cycle c) is
    position k of that source's own ShuffledStreamDataset (its seed derived from (seed, s)). So every
    position maps to one record by a pure function: resume and DDP are exact as with
    ShuffledStreamDataset, and every window of C positions aligned to a cycle holds exactly w_s
    records of source s (a batch of B = m * C positions: m * w_s each).

    Each record is a shallow copy with "dataset_id" = s and "stream_seed" (SeededMapper).
    """

    def __init__(self, sources, ratios, seed=0, shuffle=True, names=None):
        """
        Args:
            sources: N lists of records.
            ratios: N positive numbers (integer_weights).
            names: N names for error messages (default "source <s>").
        """
        names = list(names) if names is not None else [f"source {s}" for s in range(len(sources))]
        if len(ratios) != len(sources):
            raise ValueError(f"{len(ratios)} dataset ratios {tuple(ratios)} for {len(sources)} datasets {names}: give one each.")
        for name, records in zip(names, sources):
            if not records:
                raise ValueError(f"Training dataset '{name}' has no record: check its folder, or drop it from DATASETS.TRAIN.")
        self.weights = integer_weights(ratios)
        self.streams = [
            ShuffledStreamDataset(records, seed=int(np.random.SeedSequence([seed, s]).generate_state(1)[0]), shuffle=shuffle)
            for s, records in enumerate(sources)
        ]
        self.seed = seed
        self.shuffle = shuffle
        self._pattern = np.repeat(np.arange(len(sources)), self.weights)
        self._cycle, self._slots = -1, None

    def __len__(self):
        return sum(len(stream) for stream in self.streams)

    def _slots_of_cycle(self, cycle):
        """(source [C], rank of the slot among its source's slots [C]) of one cycle."""
        if cycle != self._cycle:
            order = np.random.default_rng([self.seed, cycle]).permutation(self._pattern) if self.shuffle else self._pattern
            ranks = np.zeros(len(order), dtype=np.int64)
            for s in range(len(self.streams)):
                ranks[order == s] = np.arange(self.weights[s])
            self._cycle, self._slots = cycle, (order, ranks)
        return self._slots

    def __getitem__(self, position):
        cycle, slot = divmod(position, len(self._pattern))
        sources, ranks = self._slots_of_cycle(cycle)
        source = int(sources[slot])
        record = self.streams[source][cycle * self.weights[source] + int(ranks[slot])]
        record["dataset_id"] = source
        return record


def split_by_dataset(records, names):
    """Records grouped by their "dataset_name" in the order of `names` -> list of N lists."""
    groups = {name: [] for name in names}
    for record in records:
        groups[record["dataset_name"]].append(record)
    return [groups[name] for name in names]


def domain_pair_stream(records, ratios, images_per_batch, seed=0):
    """The two-domain stream of domain-adaptive training (LAID): a MixedStreamDataset over the
    "source" and the "target" records (their "domain" tag, PS.DATA.TRAIN_DOMAINS) in `ratios`
    (B_s : B_t), each domain with its own seeded permutation; "dataset_id" is 0 for a source record,
    1 for a target one. `images_per_batch` (one process's batch) must hold whole cycles, so every
    batch has exactly B_s source and B_t target images.
    """
    source = [r for r in records if r.get("domain") == "source"]
    target = [r for r in records if r.get("domain") == "target"]
    for name, part in (("source", source), ("target", target)):
        if not part:
            raise ValueError(
                f"Domain-adaptive training needs {name} images: PS.DATA.TRAIN_DOMAINS must tag at least one "
                f"DATASETS.TRAIN entry '{name}', and that set must hold images."
            )
    stream = MixedStreamDataset([source, target], ratios, seed=seed, names=["the source domain", "the target domain"])
    cycle = sum(stream.weights)
    if images_per_batch % cycle:
        raise ValueError(
            f"A batch of {images_per_batch} images per process cannot hold source and target images in the ratio "
            f"{tuple(ratios)} (PS.DATA.DOMAIN_RATIOS): make SOLVER.IMS_PER_BATCH / processes a multiple of {cycle}."
        )
    return stream
