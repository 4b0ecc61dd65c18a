"""Export a HybridPretrain checkpoint as initial weights of any ps_plugin method (Fig. 5: backbone
only, or backbone + heads), loaded through MODEL.WEIGHTS.

- "backbone": the `backbone.*` tensors.
- "all": every tensor but the pre-training-only parts (the SimSiam predictor, both IAMs) and the
  OIM identity tables (their rows are the pre-training sets' identities; fine-tuning sizes its own).
Backbone names lose their "backbone." and "bottom_up." wrappers (`backbone.body.conv_stem.weight` ->
`body.conv_stem.weight`): the checkpoint is saved with Detectron2's matching heuristics, which load a
name into every model name it ends, so the same body loads with or without an FPN around it.
"""
PARTS = ("backbone", "all")
PRETRAIN_ONLY_PREFIXES = ("predictor.", "det_iam.", "reid_iam.", "roi_heads.reid_branch.oim.")


def export_pretrained(state_dict, parts):
    """{name: tensor} of a HybridPretrain model -> the exported subset (module docstring)."""
    if parts not in PARTS:
        raise ValueError(f"--parts must be one of {PARTS}, got {parts!r}.")
    if not any(k.startswith("backbone.") for k in state_dict):
        raise ValueError("The checkpoint holds no 'backbone.*' tensor: is it a ps_plugin training checkpoint (model_*.pth)?")
    keep = [k for k in state_dict if k.startswith("backbone.") or (parts == "all" and not k.startswith(PRETRAIN_ONLY_PREFIXES))]
    return {unwrap_backbone_name(k): state_dict[k] for k in keep}


def unwrap_backbone_name(name):
    """"backbone.bottom_up.X" and "backbone.X" -> "X"; any other name unchanged."""
    for prefix in ("backbone.", "bottom_up."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name
