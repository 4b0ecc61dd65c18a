"""Keys of the shared re-id parts (embedding head, OIM): cfg.PS.REID."""
from detectron2.config import CfgNode as CN


def add_reid_config(cfg):
    """Add cfg.PS.REID (embedding head + OIM)."""
    _C = cfg
    _C.PS.REID = CN()
    # Re-id embedding size D of every method (OIM / SeqNet / NAE / PSDiff: 256; SPNet-S 128, SPNet-L 2048).
    _C.PS.REID.EMBED_DIM = 256
    # BatchNorm1d after the embedding projection.
    _C.PS.REID.HEAD_BN = True
    # Rows of the OIM lookup table; 0: sized by PersonSearchTrainer from the training identities
    # (ps_plugin.data.identities: each set's ids -> contiguous rows, offset across sets), or at
    # inference from the checkpoint. A value > 0 fixes the size (>= the number of training identities).
    _C.PS.REID.NUM_PIDS = 0
    # OIM LUT momentum (OIM paper Sec. 3.2: 0.5).
    _C.PS.REID.LUT_MOMENTUM = 0.5
    # OIM unlabeled circular queue: 5000 for CUHK-SYSU, 500 for PRW (OIM / SeqNet).
    _C.PS.REID.QUEUE_SIZE = 5000
    # Inverse temperature of the OIM logits (temperature 1/30).
    _C.PS.REID.SCALAR = 30.0
    _C.PS.REID.LOSS_WEIGHT = 1.0
    # FPN / single-map heads: re-id reads the pooled ROI features through its own copy of the box
    # head (True), or the box head's output shared with the box predictor (False).
    _C.PS.REID.SEPARATE_BOX_HEAD = True
    # Norm-aware embedding (NAE, CVPR 2020): the embedding norm gives the detection score.
    _C.PS.REID.NAE = False
    _C.PS.REID.NAE_LOSS_WEIGHT = 1.0
