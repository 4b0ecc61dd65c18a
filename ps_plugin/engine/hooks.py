"""Hooks that make a multi-process checkpoint hold every rank's state: `GatherRNGStates` (every rank's
RNG states) and `BroadcastBatchNormStatistics` (one set of BatchNorm running statistics)."""
import torch.distributed as dist
from detectron2.engine import HookBase
from detectron2.utils import comm
from torch import nn

from ps_plugin.data.samplers import rng_state


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
