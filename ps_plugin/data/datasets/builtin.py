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

# Hybrid pre-training's crop and detection-only sets (docs/PRETRAIN.md).
from .crowdhuman import register_all_crowdhuman  # noqa: E402
from .cuhk03 import register_cuhk03_mat, register_cuhk03_np  # noqa: E402
from .detection_only import register_all_detection_only  # noqa: E402
from .eurocity import register_all_ecp  # noqa: E402
from .luperson import register_luperson  # noqa: E402
from .market1501 import register_market1501  # noqa: E402
from .msmt17 import register_msmt17  # noqa: E402
from .scene_crops import register_all_scene_crops  # noqa: E402

register_all_crowdhuman()
register_cuhk03_np()
register_cuhk03_mat()
register_all_detection_only()
register_all_ecp()
register_luperson()
register_market1501()
register_msmt17()
register_all_scene_crops()
