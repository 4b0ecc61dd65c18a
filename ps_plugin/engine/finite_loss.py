"""Stop training on a NaN or inf loss, naming the iteration and the loss term, before the update."""
from detectron2.engine import AMPTrainer, SimpleTrainer
from detectron2.utils import comm


class NonFiniteLossError(FloatingPointError):
    pass


class FiniteLossMixin:
    """Checks every loss term on every rank; raises before `optimizer.step()` so weights stay good.

    The last checkpoint on disk is the last good state: resume from it with `--resume`.
    """

    # A private method, because the check must run between `backward()` and `optimizer.step()` and
    # Detectron2 0.6 has no public point there: hooks run before and after the whole step (after the
    # update), a wrapped optimizer `step()` does not see the loss terms, a wrapped model changes what
    # `trainer.model` and the checkpointer hold, and overriding `run_step` would copy the loop.
    # SimpleTrainer.run_step and AMPTrainer.run_step call `_write_metrics` exactly there.
    def _write_metrics(self, loss_dict, data_time, *args, **kwargs):
        bad = {k: float(v) for k, v in loss_dict.items() if not bool(v.detach().isfinite().all())}
        all_bad = {}
        for rank_bad in comm.all_gather(bad):
            all_bad.update(rank_bad)
        if all_bad:
            terms = ", ".join(f"{k}={v}" for k, v in sorted(all_bad.items()))
            raise NonFiniteLossError(
                f"Non-finite loss at iteration {self.iter}: {terms}. Training stopped before the weight "
                "update; the last checkpoint in OUTPUT_DIR is the last good state. Lower SOLVER.BASE_LR "
                "or check the data, then continue with --resume."
            )
        super()._write_metrics(loss_dict, data_time, *args, **kwargs)


class FiniteLossTrainer(FiniteLossMixin, SimpleTrainer):
    pass


class FiniteLossAMPTrainer(FiniteLossMixin, AMPTrainer):
    pass
