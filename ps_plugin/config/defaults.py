"""`add_ps_config(cfg)`: every ps_plugin key lives under `cfg.PS`; Detectron2's own nodes are untouched."""
from detectron2.config import CfgNode as CN

from ps_plugin.modeling.laid.config import add_laid_config
from ps_plugin.modeling.ola.config import add_ola_config
from ps_plugin.modeling.pretrain.config import add_pretrain_config
from ps_plugin.modeling.psdiff.config import add_psdiff_config
from ps_plugin.modeling.spnet.config import add_spnet_config

from .backbone import add_backbone_config
from .reid import add_reid_config
from .solver import add_solver_config


def add_data_config(cfg):
    """Dataset tagging shared by every method (multi-domain runs: LAID, hybrid pre-training)."""
    _C = cfg
    _C.PS.DATA = CN()
    # One domain tag per entry of DATASETS.TRAIN (e.g. ("source", "target")); empty: all "source". A
    # "target" set is read without its annotations (data/identities.py hide_annotations).
    _C.PS.DATA.TRAIN_DOMAINS = ()
    # One sampling ratio per entry of DATASETS.TRAIN (e.g. (2, 1, 1)): the datasets are mixed in these
    # proportions (data/samplers.py MixedStreamDataset) and every record gets its "dataset_id". Empty:
    # one shuffled stream over all records.
    _C.PS.DATA.TRAIN_RATIOS = ()
    # With a "target" in TRAIN_DOMAINS: source and target images per batch in this ratio (B_s : B_t;
    # data/samplers.py domain_pair_stream). LAID / DSCA: 4 + 4.
    _C.PS.DATA.DOMAIN_RATIOS = (1, 1)
    # Drop training images that hold no person box (Detectron2's FILTER_EMPTY_ANNOTATIONS equivalent).
    _C.PS.DATA.FILTER_EMPTY = False
    # Train on this fraction of each DATASETS.TRAIN set's images (label-efficiency studies, e.g. hybrid
    # pre-training's Fig. 5 at 20 / 60 / 100 %): a random subset drawn from TRAIN_SUBSET_SEED, fixed
    # across training seeds, and nested (the 20 % images lie inside the 60 % ones). Identities seen only
    # in the dropped images get no identity-table row.
    _C.PS.DATA.TRAIN_IMAGE_FRACTION = 1.0
    _C.PS.DATA.TRAIN_SUBSET_SEED = 0
    # Records' "ignore_regions" (CrowdHuman's crowds and reflections; EuroCity Persons' depictions and the
    # persons its evaluation does not count) reach the model as IGNORE_BOXES, and the RPN (PersonSearchRPN)
    # and ROI sampling treat unmatched anchors / proposals inside one as ignored, not background. Records
    # without regions train as without this key.
    _C.PS.DATA.IGNORE_REGIONS = True
    # "Inside" a region: |box ∩ region| / |box| above this. Detectron (Caffe2)'s TRAIN.CROWD_FILTER_THRESH
    # default for COCO crowd regions, measured the same way.
    _C.PS.DATA.IGNORE_IOA_THRESH = 0.7


def add_input_config(cfg):
    """Augmentation recipes of the person-search mapper (SPNet supplementary Sec. 8)."""
    _C = cfg
    _C.PS.INPUT = CN()
    # "resize": shortest-edge resize from INPUT.MIN_SIZE_TRAIN / MAX_SIZE_TRAIN + flip.
    # "wrs": window resize (short side WINDOW_MIN_SIZE, long side capped at WINDOW_MAX_SIZE).
    # "rrc2": wrs, then one of {random focused square crop, random bbox-safe crop} + flip.
    # "rrc_scale": random scale in SCALE_RANGE, then the rrc2 crops + flip.
    _C.PS.INPUT.TRAIN_AUG = "resize"
    # Test-time resize: "resize" (INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST) or "wrs".
    _C.PS.INPUT.TEST_AUG = "resize"
    _C.PS.INPUT.WINDOW_MIN_SIZE = 900
    _C.PS.INPUT.WINDOW_MAX_SIZE = 1500
    # Square crop side of rrc2 / rrc_scale: 512 for pre-training and SPNet-S, 1024 for SPNet-L.
    _C.PS.INPUT.CROP_SIZE = 512
    # rrc_scale factor range. Paper: 0.5x-2x. The authors' code (albumentations +1 bias) gives (1.5, 3.0).
    _C.PS.INPUT.SCALE_RANGE = (0.5, 2.0)
    # Erosion rate of the bbox-safe crop (authors' code: 0.1).
    _C.PS.INPUT.BBOX_SAFE_EROSION = 0.1
    _C.PS.INPUT.FLIP_PROB = 0.5
    # Boxes less visible than this fraction of their area after a crop are dropped with their pid
    # (authors' code: albumentations BboxParams min_visibility=0.4).
    _C.PS.INPUT.MIN_BOX_VISIBILITY = 0.4
    # k augmented views of one image with known box correspondence (SPNet QC: k = 2; SimSiam: 2).
    _C.PS.INPUT.NUM_VIEWS = 1


def add_eval_config(cfg):
    """Person-search evaluation protocol options."""
    _C = cfg
    _C.PS.EVAL = CN()
    # Gallery detections kept for search (CUHK-SYSU / PRW convention).
    _C.PS.EVAL.DET_THRESH = 0.5
    # Detection AP / recall are computed on detections above this score.
    _C.PS.EVAL.DET_EVAL_THRESH = 0.01
    _C.PS.EVAL.DET_LABELED_ONLY = False
    # CUHK-SYSU gallery sizes to report; -1 = the full test pool.
    _C.PS.EVAL.GALLERY_SIZES = (50, 100, 500, 1000, 2000, 4000, -1)
    # Duplicate gallery entries: "reference" counts the ground truth twice, scores the image once;
    # "unique" counts each gallery image once.
    _C.PS.EVAL.DUPLICATE_RULE = "reference"
    # PRW: search only gallery images from other cameras than the query's.
    _C.PS.EVAL.PRW_CROSS_CAMERA = False
    # Context bipartite graph matching (CBGM) re-ranking.
    _C.PS.EVAL.CBGM = False
    _C.PS.EVAL.CBGM_K1 = 10
    _C.PS.EVAL.CBGM_K2 = 3
    # Also report re-id mAP with ground-truth gallery boxes (a perfect detector).
    _C.PS.EVAL.GT_MAP = True
    # Write the model-free results pickle (tools/evaluate_results.py input) next to the metrics.
    _C.PS.EVAL.SAVE_RESULTS = False


def add_ps_config(cfg):
    """Add every ps_plugin node under `cfg.PS`."""
    cfg.PS = CN()
    add_data_config(cfg)
    add_input_config(cfg)
    add_eval_config(cfg)
    add_reid_config(cfg)
    add_backbone_config(cfg)
    add_solver_config(cfg)
    add_spnet_config(cfg)
    add_psdiff_config(cfg)
    add_ola_config(cfg)
    add_laid_config(cfg)
    add_pretrain_config(cfg)
