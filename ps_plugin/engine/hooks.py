"""`GatherRNGStates`: every rank's RNG states, collected where all ranks run, for the checkpoint."""
from detectron2.engine import HookBase
from detectron2.utils import comm

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
