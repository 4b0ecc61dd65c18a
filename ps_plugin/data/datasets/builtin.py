"""Register every builtin dataset. Nothing is read here: each loader resolves its folder under
$DETECTRON2_DATASETS (default `datasets/`) when DatasetCatalog.get(name) first calls it."""
from .coco_persons import register_all_coco_persons
from .cuhk_sysu import register_all_cuhk_sysu
from .mot import register_realmini
from .prw import register_all_prw
from .synthps import register_all_synthps

register_all_cuhk_sysu()
register_all_prw()
register_all_coco_persons()
register_realmini()
register_all_synthps()
register_all_synthps(prefix="synthps_b")
