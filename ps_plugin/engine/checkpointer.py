"""`PersonSearchCheckpointer`: Detectron2's DetectionCheckpointer for checkpoints a user hands in."""
import logging

from detectron2.checkpoint import DetectionCheckpointer

from ps_plugin.data.identities import IdentityMap
from ps_plugin.modeling.common.num_pids import identity_tables, size_identity_tables_from_checkpoint
from ps_plugin.modeling.pretrain.export import MIN_BACKBONE_MATCH_KEY, check_backbone_match
from ps_plugin.utils.files import load_torch_file

__all__ = ["PersonSearchCheckpointer"]

logger = logging.getLogger(__name__)

PICKLE_WARNING = (
    "'{}' is a pickle (.pkl, Detectron2 model-zoo format): loading it runs any code it carries. Load .pkl "
    "weights only from a source you trust; tools/convert_pretrained.py turns a state dict into a .pth, "
    "which is read as tensors only."
)


def size_variable_tables(model, state_dict):
    """Call `size_from_state_dict(prefix, state_dict)` on every module that has one (a table whose row
    count changes during training, e.g. LAID's ProxyMemory), so Detectron2 loads it instead of skipping
    it for a shape mismatch. Keys may carry DDP's "module." prefix."""
    if any(key.startswith("module.") for key in state_dict):
        state_dict = {key[len("module."):]: value for key, value in state_dict.items()}
    for name, module in model.named_modules():
        if hasattr(module, "size_from_state_dict"):
            module.size_from_state_dict(f"{name}." if name else "", state_dict)


class PersonSearchCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer that

    - reads .pth files with torch.load(weights_only=True) (tensors and containers only, no code) and
      names a truncated or foreign file; warns that a .pkl runs code when Detectron2 unpickles it;
    - gives every table that changes size in training (`size_variable_tables`) the checkpoint's rows;
    - gives the model's unsized identity tables (PS.REID.NUM_PIDS 0, no training data read) the
      checkpoint's row count, so inference needs only the checkpoint;
    - with an "identities" checkpointable (the trainer's IdentityMap), loads the identity tables of
      MODEL.WEIGHTS only when that checkpoint recorded the same identities: rows of other people
      are left at zero (a log line says so) instead of being trained on as if they matched;
    - refuses a checkpoint that declares MIN_BACKBONE_MATCH_KEY (an exported pre-training checkpoint,
      ps_plugin.modeling.pretrain.export) when it fills under that share of the model's backbone
      tensors: ValueError naming the file, where Detectron2 only logs the names it could not load.
    """

    def _load_file(self, filename):
        self._loading = filename
        if filename.endswith((".pkl", ".pyth")):
            logger.warning(PICKLE_WARNING.format(filename))
            return super()._load_file(filename)
        loaded = load_torch_file(filename, "checkpoint")
        if not isinstance(loaded, dict):
            raise ValueError(f"Checkpoint '{filename}' holds a {type(loaded).__name__}, not a state dict.")
        return loaded if "model" in loaded else {"model": loaded}

    def _load_model(self, checkpoint):
        state = checkpoint.get("model", {})
        size_identity_tables_from_checkpoint(self.model, state)
        size_variable_tables(self.model, state)
        current, saved = self.checkpointables.get("identities"), checkpoint.get("identities")
        if current is not None and saved is not None:
            saved_map = IdentityMap(dict(zip(saved["datasets"], saved["person_ids"])))
            if saved_map != current:
                logger.warning(
                    f"Not loading the identity tables of the checkpoint: it was trained on {saved_map.describe()}, "
                    f"this run on {current.describe()}; the tables start from zero."
                )
                for key in identity_tables(self.model):
                    state.pop(key, None)
                    state.pop(f"module.{key}", None)
        incompatible = super()._load_model(checkpoint)
        minimum = checkpoint.get(MIN_BACKBONE_MATCH_KEY)
        if minimum is not None:
            check_backbone_match(self.model.state_dict(), incompatible.missing_keys, minimum, self._loading)
        return incompatible
