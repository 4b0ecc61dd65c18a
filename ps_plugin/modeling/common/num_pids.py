"""`resolve_num_pids`: the number of labeled identities the OIM lookup table holds, shared by
every method that sizes one (baseline, SPNet with PS.SPNET.REID.LOSS "oim")."""
import logging

from detectron2.data import DatasetCatalog, MetadataCatalog

logger = logging.getLogger(__name__)

__all__ = ["resolve_num_pids"]


def resolve_num_pids(cfg):
    """cfg.PS.REID.NUM_PIDS, or (when 0) the sum of `num_pids` over DATASETS.TRAIN's metadata.

    Training sets whose metadata lacks `num_pids` are loaded once (register_person_search sets it).
    Several training sets are assumed to use disjoint, consecutive person ids.
    """
    if cfg.PS.REID.NUM_PIDS > 0:
        return cfg.PS.REID.NUM_PIDS
    total = 0
    for name in cfg.DATASETS.TRAIN:
        meta = MetadataCatalog.get(name)
        if not hasattr(meta, "num_pids"):
            try:
                DatasetCatalog.get(name)
            except FileNotFoundError as error:
                raise FileNotFoundError(
                    f"{error}\nThe OIM lookup table is sized from DATASETS.TRAIN. For inference without the "
                    "training data, set PS.REID.NUM_PIDS to the checkpoint's number of identities."
                ) from error
        total += MetadataCatalog.get(name).get("num_pids", 0)
    if total <= 0:
        raise ValueError(
            f"Cannot size the OIM lookup table: DATASETS.TRAIN={tuple(cfg.DATASETS.TRAIN)} gives no "
            "labeled identity. Set PS.REID.NUM_PIDS (the number of labeled person ids)."
        )
    logger.info(f"OIM lookup table: {total} identities from {tuple(cfg.DATASETS.TRAIN)}")
    return total
