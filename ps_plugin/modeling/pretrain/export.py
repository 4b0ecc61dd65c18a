"""Export a HybridPretrain checkpoint as initial weights of any ps_plugin method (Fig. 5: backbone
only, or backbone + heads), loaded through MODEL.WEIGHTS.

- "backbone": the `backbone.*` tensors, and a C4 model's `roi_heads.res5.*` (ResNet's last stage,
  which C4 heads run on the ROIs and FPN models keep in their body).
- "all": every tensor but the pre-training-only parts (the SimSiam predictor, the IAMs, the
  inter-task module) and the
  OIM identity tables (their rows are the pre-training sets' identities; fine-tuning sizes its own).
Backbone names lose their "backbone." and "bottom_up." wrappers (`backbone.body.conv_stem.weight` ->
`body.conv_stem.weight`) and C4's res5 its "roi_heads." (`roi_heads.res5.0.conv1.weight` ->
`res5.0.conv1.weight`): the checkpoint is saved with Detectron2's matching heuristics, which load a
name into every model name it ends, so the same body loads with or without an FPN around it, and
res5 into a C4 model's heads or an FPN model's body.

The saved file declares MIN_BACKBONE_MATCH: loading it (ps_plugin.engine.PersonSearchCheckpointer,
the trainer's) is an error when it fills under that share of the model's backbone tensors, where
Detectron2 would only log the missing names.
"""
from ps_plugin.modeling.backbones.pretrained import save_checkpoint

__all__ = ["export_pretrained", "save_export", "check_backbone_match", "body_keys"]

PARTS = ("backbone", "all")
SOURCE = "ps-checkpoint"
PRETRAIN_ONLY_PREFIXES = ("predictor.", "det_iam.", "reid_iam.", "inter_task_am.", "roi_heads.reid_branch.oim.")
C4_RES5 = "roi_heads.res5."
# Issue 17: an export must initialise the target's backbone; 95 % leaves room for buffers a target adds.
MIN_BACKBONE_MATCH = 0.95
MIN_BACKBONE_MATCH_KEY = "min_backbone_match"


def export_pretrained(state_dict, parts):
    """{name: tensor} of a HybridPretrain model -> the exported subset (module docstring)."""
    if parts not in PARTS:
        raise ValueError(f"--parts must be one of {PARTS}, got {parts!r}.")
    if not any(k.startswith("backbone.") for k in state_dict):
        raise ValueError("The checkpoint holds no 'backbone.*' tensor: is it a ps_plugin training checkpoint (model_*.pth)?")
    keep = [
        k for k in state_dict
        if k.startswith(("backbone.", C4_RES5)) or (parts == "all" and not k.startswith(PRETRAIN_ONLY_PREFIXES))
    ]
    return {export_name(k): state_dict[k] for k in keep}


def export_name(name):
    """"backbone.bottom_up.X" and "backbone.X" -> "X"; "roi_heads.res5.X" -> "res5.X"; any other name unchanged."""
    if name.startswith(C4_RES5):
        return name[len("roi_heads."):]
    for prefix in ("backbone.", "bottom_up."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def save_export(state_dict, parts, output_path):
    """export_pretrained(state_dict, parts) saved at output_path for MODEL.WEIGHTS, declaring
    MIN_BACKBONE_MATCH; returns the exported {name: tensor}."""
    exported = export_pretrained(state_dict, parts)
    save_checkpoint(exported, SOURCE, output_path, **{MIN_BACKBONE_MATCH_KEY: MIN_BACKBONE_MATCH})
    return exported


def body_keys(model_keys):
    """The model names an exported backbone fills: `backbone.bottom_up.*` under an FPN (the FPN's own
    convolutions are not pre-trained), else `backbone.*`."""
    bottom_up = [k for k in model_keys if k.startswith("backbone.bottom_up.")]
    return bottom_up or [k for k in model_keys if k.startswith("backbone.")]


def check_backbone_match(model_keys, missing_keys, minimum, filename):
    """Raise ValueError when a load left more than 1 - `minimum` of body_keys(model_keys) in
    `missing_keys` (matched share = 1 - |missing body keys| / |body keys|)."""
    body = body_keys(model_keys)
    missing = sorted(set(body) & set(missing_keys))
    matched = 1.0 - len(missing) / max(len(body), 1)
    if matched < minimum:
        raise ValueError(
            f"'{filename}' initialises {len(body) - len(missing)} of the model's {len(body)} backbone tensors "
            f"({matched:.1%}, under the {minimum:.0%} an exported pre-training checkpoint must reach); not loaded "
            f"e.g. {missing[:3]}. Pre-train the backbone the config builds (the same PS.BACKBONE.NAME / "
            "MODEL.RESNETS, up to the same last stage) and export it again, or leave MODEL.WEIGHTS empty."
        )
