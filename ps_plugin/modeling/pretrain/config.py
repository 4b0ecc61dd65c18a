"""`add_pretrain_config(cfg)`: every hybrid pre-training key under cfg.PS.PRETRAIN.

Source: "Divide and Conquer: Hybrid Pre-training for Person Search" (Tian et al., AAAI'24). The
pre-training hyper-parameters are deferred to code that was never released
(../shared/notes/methods_facts.md §D): values the paper does not give are marked "guess".
"""
from detectron2.config import CfgNode as CN


def add_pretrain_config(cfg):
    """Data unification (Fig. 3b, Table 4) and the loss weights of Eq. 1."""
    _C = cfg
    _C.PS.PRETRAIN = CN()
    # How a person crop becomes a scene (Table 4): "expand_resize" (the paper's choice: a canvas
    # CANVAS_RATIO x the crop on each side, resized to CANVAS_SIZE) or "random_paste" (the crop
    # pasted at a random place of a CANVAS_SIZE canvas).
    _C.PS.PRETRAIN.UNIFICATION = "expand_resize"
    # (low, high) canvas side / crop side, drawn per side (guess: the paper gives no range).
    _C.PS.PRETRAIN.CANVAS_RATIO = (1.0, 3.0)
    # (height, width) of the unified canvas, before INPUT's resize (guess: "a fixed size").
    _C.PS.PRETRAIN.CANVAS_SIZE = (600, 800)
