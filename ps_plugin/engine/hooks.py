"""Hooks that make a multi-process checkpoint hold every rank's state: `GatherRNGStates` (every rank's
RNG states) and `BroadcastBatchNormStatistics` (one set of BatchNorm running statistics); and the two
hooks of models trained with pseudo labels (ps_plugin.modeling.common.ClusterMemoryModel):
`MemoryInitHook` (fill the memories before iteration 0) and `EpochClusteringHook` (new pseudo labels
at every epoch boundary)."""
import logging

import torch
import torch.distributed as dist
from detectron2.data import build_detection_test_loader
from detectron2.engine import HookBase
from detectron2.utils import comm
from torch import nn

from ps_plugin.data.samplers import rng_state, set_rng_state
from ps_plugin.utils.distributed import all_gather_tensor, broadcast_tensor

logger = logging.getLogger(__name__)


class GatherRNGStates(HookBase):
    """After each step, all-gather (rank order) the torch / numpy / python RNG states of every rank
    into `trainer.gathered_rng_states`.

    Only the main process writes checkpoints, so `state_dict()` cannot run a collective itself
    (it would wait forever for the other ranks). Register this hook before the checkpointer. With
    one process nothing is gathered: `state_dict()` reads the state directly.
    """

    def after_step(self):
        if comm.get_world_size() > 1:
            self.trainer.gathered_rng_states = comm.all_gather(rng_state())


class BroadcastBatchNormStatistics(HookBase):
    """After each step, copy rank 0's BatchNorm running statistics (running_mean, running_var,
    num_batches_tracked) to every rank.

    The model runs under DDP with broadcast_buffers=False (the memory banks are kept equal by
    all_gather, and broadcasting them every step would be wasteful), so each rank's BatchNorm layers
    would otherwise track their own statistics, while only rank 0 writes them to the checkpoint: a
    resumed rank > 0 would continue from other statistics than it had, and the ranks would evaluate
    with different ones. Training uses batch statistics, so this changes no gradient. Register it
    before the checkpointer.
    """

    def after_step(self):
        if comm.get_world_size() == 1:
            return
        model = getattr(self.trainer.model, "module", self.trainer.model)
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                for buffer in (module.running_mean, module.running_var, module.num_batches_tracked):
                    dist.broadcast(buffer, src=0)


def _unwrapped(model):
    return getattr(model, "module", model)


class MemoryInitHook(HookBase):
    """Before training, number the training boxes and, in a fresh run, fill the model's memories by
    running the initial model (eval mode, test-time resize) on every training box.

    Each rank extracts its share of the images (Detectron2's InferenceSampler); slots and features
    are all-gathered, so every rank writes the same memories. The global RNG states are restored
    afterwards: the extra loader draws nothing from the training's random streams. A resumed run
    (start_iter > 0) keeps the checkpoint's memories and only checks that they were filled from a
    training set of the same size.
    """

    def __init__(self, records, mapper, num_workers=0):
        self.records = records
        self.mapper = mapper
        self.num_workers = num_workers

    def before_train(self):
        model = _unwrapped(self.trainer.model)
        state = model.pseudo_label_state
        num_boxes = model.index_training_boxes(self.records)
        if self.trainer.start_iter > 0 and int(state.num_slots) > 0:
            self._check_resumed_size(int(state.num_slots), num_boxes)
            return
        saved_rng = rng_state()
        loader = build_detection_test_loader(self.records, mapper=self.mapper, num_workers=self.num_workers)
        slots, features = self._extract(model, loader)
        set_rng_state(saved_rng)
        model.write_memory(slots, features)
        state.num_slots.fill_(num_boxes)
        logger.info(f"Memory init: {len(slots)} of {num_boxes} training boxes written")

    def _check_resumed_size(self, checkpoint_slots, num_boxes):
        if checkpoint_slots != num_boxes:
            datasets = sorted({r.get("dataset_name", "?") for r in self.records})
            raise ValueError(
                f"The checkpoint's memory holds {checkpoint_slots} training boxes, but the training set "
                f"{datasets} (DATASETS.TRAIN) has {num_boxes}: resume with the training set the checkpoint "
                "was trained on, or start a new run (MODEL.WEIGHTS without --resume) to refill the memory."
            )

    @staticmethod
    @torch.no_grad()
    def _extract(model, loader):
        was_training = model.training
        model.eval()
        slots, features = [], {}
        for batch in loader:
            batch_slots, batch_features = model.extract_memory_features(batch)
            slots.append(batch_slots)
            for name, value in batch_features.items():
                features.setdefault(name, []).append(value)
        model.train(was_training)
        slots = all_gather_tensor(torch.cat(slots))
        return slots, {name: all_gather_tensor(torch.cat(values)) for name, values in features.items()}


class EpochClusteringHook(HookBase):
    """Before the first step of every epoch of the training stream (epoch = images seen // training
    images; epoch 0 included), rank 0 clusters the memory and broadcasts the labels.

    The last clustered epoch is a model buffer, so a run resumed inside an epoch keeps the
    checkpoint's labels instead of clustering again.
    """

    def __init__(self, num_images, images_per_batch):
        if num_images <= 0:
            raise ValueError("EpochClusteringHook: the training set holds no image")
        self.num_images = num_images
        self.images_per_batch = images_per_batch

    def before_step(self):
        model = _unwrapped(self.trainer.model)
        epoch = self.trainer.iter * self.images_per_batch // self.num_images
        if epoch <= int(model.pseudo_label_state.epoch):
            return
        device = model.pseudo_label_state.epoch.device
        labels = torch.zeros(int(model.pseudo_label_state.num_slots), dtype=torch.long, device=device)
        if comm.is_main_process():
            computed, statistics = model.pseudo_labels(epoch)
            labels.copy_(torch.as_tensor(computed))
            logger.info(f"Epoch {epoch} pseudo labels: {statistics}")
            self.trainer.storage.put_scalars(**{f"cluster/{k}": v for k, v in statistics.items()}, smoothing_hint=False)
        model.set_pseudo_labels(broadcast_tensor(labels))
        model.pseudo_label_state.epoch.fill_(epoch)
