"""Detect configs that need Detectron2 C++/CUDA ops missing from a placeholder build."""
from detectron2 import _C as d2_ext

# Symbols an official detectron2 build exports and the pb1-detectron2 placeholder does not.
_DEFORM_OP = "deform_conv_forward"
_ROTATED_OP = "box_iou_rotated"


def has_compiled_op(name):
    """True when the installed detectron2 extension provides `name`."""
    return hasattr(d2_ext, name)


def _needed_ops(cfg):
    """List of (op symbol, config key that needs it)."""
    needed = []
    if any(cfg.MODEL.RESNETS.DEFORM_ON_PER_STAGE):
        needed.append((_DEFORM_OP, "MODEL.RESNETS.DEFORM_ON_PER_STAGE"))
    if cfg.MODEL.PROPOSAL_GENERATOR.NAME == "RRPN":
        needed.append((_ROTATED_OP, "MODEL.PROPOSAL_GENERATOR.NAME=RRPN"))
    if "Rotated" in cfg.MODEL.ROI_HEADS.NAME or cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE == "ROIAlignRotated":
        needed.append((_ROTATED_OP, "MODEL.ROI_HEADS / ROI_BOX_HEAD.POOLER_TYPE (rotated boxes)"))
    return needed


def check_compiled_ops(cfg):
    """Raise RuntimeError naming the op and the config key when the build cannot run this config."""
    missing = [(op, key) for op, key in _needed_ops(cfg) if not has_compiled_op(op)]
    if missing:
        details = "; ".join(f"{key} needs the compiled op '{op}'" for op, key in missing)
        raise RuntimeError(
            f"{details}. The installed detectron2 was built without C++ sources (pb1-detectron2 "
            "placeholder), so rotated-box and deformable-conv ops are unavailable. Turn these "
            "options off, or install an official detectron2 build (see README, 'Using an official "
            "detectron2')."
        )
