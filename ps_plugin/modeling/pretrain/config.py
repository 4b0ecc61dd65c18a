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
    add_pretrain_loss_config(cfg)


def add_pretrain_loss_config(cfg):
    """L = L_ps + ETA * L_con + LAMBDA * L_adv (Eq. 1) and the parts of L_con and L_adv."""
    _C = cfg
    # η of Eq. 1, the weight of SimSiam's L_con (guess: not in the paper).
    _C.PS.PRETRAIN.ETA = 1.0
    # λ of Eq. 1, the weight of L_adv, summed over the enabled IAMs (guess: not in the paper;
    # DA-Faster and DAPS weight their adversarial terms 0.1-1).
    _C.PS.PRETRAIN.LAMBDA = 0.1
    # Gradient reversal weight of every IAM classifier (guess; DAPS uses 0.1).
    _C.PS.PRETRAIN.GRL_WEIGHT = 1.0
    # Hidden size of SimSiam's prediction MLP D -> H -> D (SimSiam: a 4x bottleneck, 2048 -> 512 -> 2048).
    _C.PS.PRETRAIN.PREDICTOR_HIDDEN_DIM = 64
    # Intra-task alignment modules (Fig. 4): detection IAM on the backbone map (image level) and
    # box-head features (instance level); re-id IAM on RoIAlign maps and re-id embeddings.
    _C.PS.PRETRAIN.DET_IAM = True
    _C.PS.PRETRAIN.REID_IAM = True
    # Inter-task alignment module (Table 5; the paper finds it hurts, 47.08 -> 46.53 mAP, and drops it):
    # one more alignment module whose 2 classes are the task of each image's data (detection set or
    # re-id crops), on the features both tasks share: the backbone map (image level) and the ROI maps
    # averaged over each box (instance level). Our reading; the paper names the module only.
    _C.PS.PRETRAIN.INTER_TASK_AM = False
    # Hidden width of the IAM classifiers' conv / FC layers (guess: "several cascaded conv layers").
    _C.PS.PRETRAIN.IAM_HIDDEN_DIM = 256
