"""Loading a pre-trained SPNet into a fine-tuning SPNet (QC <-> OC, PT vs PT-Rep; suppl. Sec. 9.2), and
an ImageNet backbone into the Box Embedder heads copied from its last stage."""
import logging
import re

logger = logging.getLogger(__name__)

_STAGE_KEY = re.compile(r"^cascade\.stages\.(\d+)\.(sp_block|box_detector|box_embedder)\.(.+)$")


def _source_keys(stage, part, rest, replicate, shared_into_separate, first_detection_stage):
    """Candidate checkpoint keys, in order, for the model key cascade.stages.{stage}.{part}.{rest}."""
    candidates = []
    if stage > 0 and replicate:
        candidates.append(f"cascade.stages.0.{part}.{rest}")
    if part == "box_embedder" and shared_into_separate and (stage == first_detection_stage or replicate):
        candidates.append(f"reid_embedder.{rest}")
    return candidates


def fill_missing_stage_weights(checkpoint, model_state, replicate=True, shared_into_separate=True,
                               first_detection_stage=0):
    """Add to `checkpoint` (a state dict, modified in place) the cascade weights it lacks.

    - PT-Rep (`replicate`, Fig. 8): stage t > 0 takes stage 0's Bridge, Box Detector and Box
      Embedder tensors.
    - `shared_into_separate`: a detection Box Embedder missing from a shared-heads checkpoint takes
      the re-id Box Embedder's tensors (the conv head; projections whose shapes differ stay random):
      the first one (stage `first_detection_stage`; 1 in OC, whose stage 0 has none) always, later
      ones with `replicate` (authors' `ckpt_load_share` fills LocHead 1).
    Only keys absent from `checkpoint` with a source of the same shape are filled; a QC checkpoint
    has no bridge, so the OC Bridge Layer keeps its init (zeros). Returns [(model key, source key)].
    """
    filled = []
    for key, value in model_state.items():
        match = _STAGE_KEY.match(key)
        if key in checkpoint or match is None:
            continue
        stage, part, rest = int(match.group(1)), match.group(2), match.group(3)
        for source in _source_keys(stage, part, rest, replicate, shared_into_separate, first_detection_stage):
            if source in checkpoint and tuple(checkpoint[source].shape) == tuple(value.shape):
                checkpoint[key] = checkpoint[source].clone()
                filled.append((key, source))
                break
    return filled


def box_head_sources(model):
    """{model key of a Box Embedder head tensor: backbone key it was copied from} for every Box
    Embedder whose head is a copy of the backbone's last stage (the MoCo momentum copies excluded)."""
    sources = {}
    for name, module in model.named_modules():
        if not name.startswith("moco.") and getattr(module, "head_source", None):
            sources.update({f"{name}.head.{k}": f"backbone.{v}" for k, v in module.head_source.items()})
    return sources


def fill_box_heads_from_backbone(checkpoint, model_state, sources):
    """Add to `checkpoint` (modified in place) the Box Embedder head tensors it lacks, copied from its
    backbone tensors (`sources`: box_head_sources): an ImageNet backbone given as MODEL.WEIGHTS (a
    converted torchvision R50 `res5`, a timm ConvNeXt `stages.3`) reaches the heads copied from that
    stage at build time. Returns [(model key, source key)]."""
    filled = []
    for key, source in sources.items():
        if key not in checkpoint and source in checkpoint and checkpoint[source].shape == model_state[key].shape:
            checkpoint[key] = checkpoint[source].clone()
            filled.append((key, source))
    return filled


def install_stage_filling_hook(model, replicate=True, shared_into_separate=True):
    """Make `model.load_state_dict` (used by DetectionCheckpointer) fill, before loading, missing
    cascade stage weights (fill_missing_stage_weights), then Box Embedder heads still missing from
    the loaded backbone (fill_box_heads_from_backbone)."""

    def hook(state_dict, prefix, *args):
        model_state = model.state_dict()
        local = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        filled = fill_missing_stage_weights(local, model_state, replicate, shared_into_separate,
                                            model.cascade.first_detection_stage)
        from_backbone = fill_box_heads_from_backbone(local, model_state, box_head_sources(model))
        for key, _ in filled + from_backbone:
            state_dict[prefix + key] = local[key]
        if filled:
            logger.info(f"SPNet checkpoint: {len(filled)} cascade tensors filled from stage 0 / re-id embedder: "
                        f"{sorted({s.rsplit('.', 1)[0] for _, s in filled})}")
        if from_backbone:
            logger.info(f"SPNet checkpoint: {len(from_backbone)} Box Embedder head tensors copied from the loaded "
                        f"backbone's last stage into {sorted({k.split('.head.')[0] for k, _ in from_backbone})}")

    model._register_load_state_dict_pre_hook(hook)
