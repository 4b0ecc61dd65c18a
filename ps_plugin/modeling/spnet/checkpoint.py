"""Loading a pre-trained SPNet into a fine-tuning SPNet (QC <-> OC, PT vs PT-Rep; suppl. Sec. 9.2)."""
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


def install_stage_filling_hook(model, replicate=True, shared_into_separate=True):
    """Make `model.load_state_dict` (used by DetectionCheckpointer) fill missing stage weights first."""

    def hook(state_dict, prefix, *args):
        model_state = {prefix + k: v for k, v in model.state_dict().items()}
        local = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        filled = fill_missing_stage_weights(
            local, {k[len(prefix):]: v for k, v in model_state.items()}, replicate, shared_into_separate,
            model.cascade.first_detection_stage,
        )
        for key, source in filled:
            state_dict[prefix + key] = local[key]
        if filled:
            logger.info(f"SPNet checkpoint: {len(filled)} cascade tensors filled from stage 0 / re-id embedder: "
                        f"{sorted({s.rsplit('.', 1)[0] for _, s in filled})}")

    model._register_load_state_dict_pre_hook(hook)
