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
import random

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
