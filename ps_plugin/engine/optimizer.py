"""SGD or AdamW with separate learning rate / weight decay for the backbone and everything after it,
and gradient clipping: Detectron2's per-parameter "value" / "norm", or "full_model" (DiffusionDet's
SOLVER.CLIP_GRADIENTS.CLIP_TYPE: one L2 norm over every parameter's gradient)."""
import torch
from detectron2.solver.build import maybe_add_gradient_clipping

FULL_MODEL = "full_model"


def add_full_model_gradient_clipping(optim_cls, clip_value, norm_type=2.0):
    """A subclass of `optim_cls` whose step() first rescales all gradients together so that their
    joint `norm_type` norm is at most `clip_value` (torch.nn.utils.clip_grad_norm_)."""

    class FullModelGradientClipping(optim_cls):
        def step(self, closure=None):
            params = [p for group in self.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, clip_value, norm_type)
            return super().step(closure)

    FullModelGradientClipping.__name__ = f"{optim_cls.__name__}WithFullModelGradientClipping"
    return FullModelGradientClipping


def with_gradient_clipping(cfg, optim_cls):
    """`optim_cls` with the clipping SOLVER.CLIP_GRADIENTS asks for ("full_model" or Detectron2's)."""
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if clip.ENABLED and clip.CLIP_TYPE == FULL_MODEL:
        return add_full_model_gradient_clipping(optim_cls, clip.CLIP_VALUE, clip.NORM_TYPE)
    return maybe_add_gradient_clipping(cfg, optim_cls)


BACKBONE_GROUPS = ("backbone", "bottom_up")


def backbone_prefix(model, group):
    """Parameter-name prefix of the backbone LR / WD group (PS.SOLVER.BACKBONE_GROUP): "backbone." or,
    for "bottom_up" with an FPN backbone, "backbone.bottom_up." (the FPN then counts as post-backbone)."""
    if group not in BACKBONE_GROUPS:
        raise ValueError(f"PS.SOLVER.BACKBONE_GROUP={group!r}: use one of {BACKBONE_GROUPS}")
    if group == "bottom_up" and hasattr(getattr(model, "backbone", None), "bottom_up"):
        return "backbone.bottom_up."
    return "backbone."


def _backbone_and_head_params(model, group="backbone"):
    """Split trainable parameters into (backbone, rest); norm and bias params get WEIGHT_DECAY_NORM/BIAS."""
    prefix = backbone_prefix(model, group)
    backbone, head = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (backbone if name.startswith(prefix) else head).append((name, param))
    return backbone, head


def _param_groups(named_params, lr, weight_decay, weight_decay_no_decay):
    """Two groups: weights with `weight_decay`; biases and 1-d (norm) params with `weight_decay_no_decay`."""
    decay = [p for n, p in named_params if p.ndim > 1]
    no_decay = [p for n, p in named_params if p.ndim <= 1]
    groups = [
        {"params": decay, "lr": lr, "weight_decay": weight_decay},
        {"params": no_decay, "lr": lr, "weight_decay": weight_decay_no_decay},
    ]
    return [g for g in groups if g["params"]]


def build_person_search_optimizer(cfg, model):
    """Optimizer from cfg.PS.SOLVER: backbone LR/WD (PS.SOLVER.BACKBONE_*, on PS.SOLVER.BACKBONE_GROUP)
    vs post-backbone (SOLVER.*)."""
    base_lr, base_wd = cfg.SOLVER.BASE_LR, cfg.SOLVER.WEIGHT_DECAY
    norm_wd = cfg.SOLVER.WEIGHT_DECAY_NORM
    bb_lr = cfg.PS.SOLVER.BACKBONE_BASE_LR if cfg.PS.SOLVER.BACKBONE_BASE_LR >= 0 else base_lr
    bb_wd = cfg.PS.SOLVER.BACKBONE_WEIGHT_DECAY if cfg.PS.SOLVER.BACKBONE_WEIGHT_DECAY >= 0 else base_wd
    backbone, head = _backbone_and_head_params(model, cfg.PS.SOLVER.BACKBONE_GROUP)
    groups = _param_groups(backbone, bb_lr, bb_wd, min(bb_wd, norm_wd)) + _param_groups(head, base_lr, base_wd, norm_wd)
    name = cfg.PS.SOLVER.OPTIMIZER.lower()
    if name == "sgd":
        optim_cls = with_gradient_clipping(cfg, torch.optim.SGD)
        return optim_cls(groups, lr=base_lr, momentum=cfg.SOLVER.MOMENTUM, nesterov=cfg.SOLVER.NESTEROV)
    if name == "adamw":
        optim_cls = with_gradient_clipping(cfg, torch.optim.AdamW)
        return optim_cls(groups, lr=base_lr, betas=tuple(cfg.PS.SOLVER.ADAMW_BETAS))
    raise ValueError(f"PS.SOLVER.OPTIMIZER={cfg.PS.SOLVER.OPTIMIZER!r}: use 'SGD' or 'AdamW'")
