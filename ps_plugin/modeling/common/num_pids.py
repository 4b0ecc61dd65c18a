"""Identity tables (the OIM lookup table of every method that has one: baseline, SPNet with
PS.SPNET.REID.LOSS "oim"): their size at build time, and their sizing afterwards from the training
data (PersonSearchTrainer) or from a checkpoint (inference)."""
import logging

from .oim import OIMLoss

logger = logging.getLogger(__name__)

__all__ = ["resolve_num_pids", "identity_tables", "size_identity_tables", "size_identity_tables_from_checkpoint"]


def resolve_num_pids(cfg):
    """Rows of an identity table at model build: cfg.PS.REID.NUM_PIDS, or 0 (unsized) when it is 0.

    Building a model reads no data: an unsized table gets its rows from the training identities
    (`size_identity_tables`, called by PersonSearchTrainer) or from the checkpoint it loads
    (`size_identity_tables_from_checkpoint`, called by PersonSearchCheckpointer); inference never
    reads the table.
    """
    if cfg.PS.REID.NUM_PIDS < 0:
        raise ValueError(f"PS.REID.NUM_PIDS={cfg.PS.REID.NUM_PIDS}: give 0 (sized from DATASETS.TRAIN) or a "
                         "table size >= the number of training identities.")
    return cfg.PS.REID.NUM_PIDS


def identity_tables(model):
    """{state-dict key of the table's `features`: MemoryBank} for every identity table of `model`."""
    return {f"{name}.lut.features" if name else "lut.features": module.lut
            for name, module in model.named_modules() if isinstance(module, OIMLoss)}


def size_identity_tables(model, num_rows, requested=0):
    """Give every identity table `num_rows` rows (the training identities, IdentityMap.num_rows).

    requested: cfg.PS.REID.NUM_PIDS; when > 0 the tables keep that size, which must hold every row.
    """
    if requested and requested < num_rows:
        raise ValueError(
            f"PS.REID.NUM_PIDS={requested} is smaller than the {num_rows} labeled identities of DATASETS.TRAIN: "
            "set PS.REID.NUM_PIDS 0 (the tables are then sized from the training data) or >= "
            f"{num_rows}."
        )
    for table in identity_tables(model).values():
        if len(table.features) != max(requested, num_rows):
            table.resize_(max(requested, num_rows))
    logger.info(f"Identity tables: {max(requested, num_rows)} rows for {num_rows} training identities")


def size_identity_tables_from_checkpoint(model, state_dict):
    """Give every unsized (0-row) identity table of `model` the row count of its entry in `state_dict`
    (a model state dict; keys may carry DDP's "module." prefix)."""
    for key, table in identity_tables(model).items():
        saved = state_dict.get(key, state_dict.get(f"module.{key}"))
        if len(table.features) == 0 and saved is not None and saved.ndim == 2:
            table.resize_(len(saved))
