"""`PersonSearchPredictor`: Detectron2's DefaultPredictor plus the query contract (embed given boxes);
`model_fingerprint` and `require_weights`: which model an index or a demo run uses; `test_time_input`,
`resize_input` and `detections_to_numpy`: the pre- and post-processing every predictor shares."""
import json
import os

import numpy as np
import torch
from detectron2.data import transforms as T
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model

from ps_plugin.engine.checkpointer import PersonSearchCheckpointer
from ps_plugin.structures import QUERY_BOXES, QUERY_EMBEDDINGS
from ps_plugin.utils.files import file_sha256

__all__ = ["PersonSearchPredictor", "detections_to_numpy", "fingerprint_config", "model_fingerprint", "require_weights",
           "resize_input", "test_time_input", "untrained_seed"]

# Config sections that decide a model's test-time output; MODEL.WEIGHTS enters as its hash.
FINGERPRINT_SECTIONS = ("MODEL", "INPUT.FORMAT", "INPUT.MIN_SIZE_TEST", "INPUT.MAX_SIZE_TEST", "TEST",
                        "PS.BACKBONE", "PS.REID", "PS.SPNET", "PS.PSDIFF")
# Keys in those sections that do not change the output: where the weights lie, the device, the
# training-only size of the identity table.
FINGERPRINT_IGNORED = ("MODEL.WEIGHTS", "MODEL.DEVICE", "PS.REID.NUM_PIDS")


def _flatten(node, prefix):
    """{"A.B.C": value} of a CfgNode (or a leaf) under `prefix`; tuples become lists (JSON)."""
    if not isinstance(node, dict):
        return {prefix: list(node) if isinstance(node, tuple) else node}
    return {k: v for key, child in node.items() for k, v in _flatten(child, f"{prefix}.{key}").items()}


def fingerprint_config(cfg):
    """{key: value} of the config's FINGERPRINT_SECTIONS, less FINGERPRINT_IGNORED (JSON-ready)."""
    config = {}
    for section in FINGERPRINT_SECTIONS:
        node = cfg
        for part in section.split("."):
            node = node[part]
        config.update(_flatten(node, section))
    for key in [k for k in config if k.startswith(FINGERPRINT_IGNORED)]:
        del config[key]
    return json.loads(json.dumps(config))


def model_fingerprint(cfg):
    """What identifies the embeddings a config computes: {"weights": MODEL.WEIGHTS (absolute, "" if
    untrained), "weights_sha256": the file's SHA-256 ("untrained-seed<S>" without weights: the
    predictor initialises an untrained model from seed S = untrained_seed(cfg)), "config":
    fingerprint_config(cfg)}. JSON-ready (and equal to itself after a JSON round trip)."""
    weights = os.path.abspath(os.path.expanduser(cfg.MODEL.WEIGHTS)) if cfg.MODEL.WEIGHTS else ""
    sha = file_sha256(weights) if weights else f"untrained-seed{untrained_seed(cfg)}"
    return {"weights": weights, "weights_sha256": sha, "config": fingerprint_config(cfg)}


def untrained_seed(cfg):
    """The torch seed an untrained model is built from: cfg.SEED, or 0 when it is negative (random)."""
    return max(cfg.SEED, 0)


def require_weights(cfg, allow_untrained=False):
    """Raise ValueError when MODEL.WEIGHTS is empty unless `allow_untrained`: an untrained model
    detects and embeds with random heads, whose output looks like a result but means nothing."""
    if not cfg.MODEL.WEIGHTS and not allow_untrained:
        raise ValueError(
            "MODEL.WEIGHTS is empty: the model's detection and re-id heads would be random, and its boxes and "
            "matches meaningless. Add `MODEL.WEIGHTS path/to/model_final.pth` (a trained checkpoint), or pass "
            "--allow-untrained (Python: allow_untrained=True) to run the untrained model on purpose."
        )


def test_time_input(cfg):
    """(ResizeShortestEdge(INPUT.MIN_SIZE_TEST, MAX_SIZE_TEST), INPUT.FORMAT): a predictor's input settings."""
    if cfg.INPUT.FORMAT not in ("RGB", "BGR"):
        raise ValueError(f"INPUT.FORMAT '{cfg.INPUT.FORMAT}': the predictor takes 'RGB' or 'BGR'.")
    resize = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST)
    return resize, cfg.INPUT.FORMAT


def resize_input(original_image, aug, input_format):
    """BGR image [H, W, 3] uint8 -> (the model's input [3, h, w] float32 in `input_format`, resized by
    `aug`; the Transform that resized it, for moving boxes into it). As DefaultPredictor.__call__."""
    image = original_image[:, :, ::-1] if input_format == "RGB" else original_image
    transform = aug.get_transform(image)
    return torch.as_tensor(transform.apply_image(image).astype("float32").transpose(2, 0, 1)), transform


def detections_to_numpy(instances):
    """Instances with pred_boxes, scores, pred_embeddings -> {"boxes" float32 [N, 4] XYXY, "scores"
    [N], "embeddings" [N, D]} (numpy)."""
    return {
        "boxes": instances.pred_boxes.tensor.numpy().astype(np.float32),
        "scores": instances.scores.numpy().astype(np.float32),
        "embeddings": instances.pred_embeddings.numpy().astype(np.float32),
    }


class PersonSearchPredictor(DefaultPredictor):
    """DefaultPredictor (checkpoint from cfg.MODEL.WEIGHTS, BGR input converted to cfg.INPUT.FORMAT,
    ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, MAX_SIZE_TEST)) for any ps_plugin meta-architecture.

    `detect(image)` runs the gallery contract; `embed_boxes(image, boxes)` the query contract, with
    the boxes moved into the resized image by the same transform as the pixels.
    The checkpoint is read by PersonSearchCheckpointer (tensors only, sized from the checkpoint).
    """

    def __init__(self, cfg):  # DefaultPredictor.__init__ with PersonSearchCheckpointer
        self.cfg = cfg.clone()
        with torch.random.fork_rng(devices=[]):  # without weights: the same random model in every run
            torch.manual_seed(untrained_seed(cfg))
            self.model = build_model(self.cfg).eval()
        PersonSearchCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        self.aug, self.input_format = test_time_input(cfg)

    def detect(self, original_image):
        """BGR image [H, W, 3] uint8 -> numpy dict of its detections in original image coordinates:
        "boxes" float32 [N, 4] XYXY, "scores" float32 [N], "embeddings" float32 [N, D]."""
        instances = self(original_image)["instances"].to("cpu")
        if not instances.has("pred_embeddings"):
            raise TypeError(
                f"{self.cfg.MODEL.META_ARCHITECTURE} returned no 'pred_embeddings': person search needs a "
                "meta-architecture whose gallery output carries re-id embeddings (e.g. PersonSearchRCNN)."
            )
        return detections_to_numpy(instances)

    def embed_boxes(self, original_image, boxes):
        """BGR image [H, W, 3] and boxes [K, 4] XYXY in its coordinates -> embeddings float32 [K, D]."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        image, transform = resize_input(original_image, self.aug, self.input_format)
        inputs = {
            "image": image,
            "height": original_image.shape[0],
            "width": original_image.shape[1],
            QUERY_BOXES: torch.as_tensor(transform.apply_box(boxes), dtype=torch.float32),
        }
        with torch.no_grad():
            output = self.model([inputs])[0]
        if QUERY_EMBEDDINGS not in output:
            raise TypeError(
                f"{self.cfg.MODEL.META_ARCHITECTURE} returned no '{QUERY_EMBEDDINGS}' for '{QUERY_BOXES}': person "
                "search needs a meta-architecture that follows the ps_plugin query contract (ps_plugin.structures)."
            )
        return output[QUERY_EMBEDDINGS].cpu().numpy().astype(np.float32)
