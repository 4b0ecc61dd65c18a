"""`ExportedPredictor`: PersonSearchPredictor's detect / embed_boxes run by an exported model
(tools/export_model.py: gallery.ts + query.ts, or gallery.onnx + query.onnx, and export.json)."""
import json
from pathlib import Path

import numpy as np
import torch
from detectron2.structures import Boxes, Instances

from ps_plugin import export as graphs  # a module import: ps_plugin.export imports this package's predictor
from ps_plugin.modeling.common.meta_arch_base import to_original_size
from ps_plugin.utils.files import file_sha256

from .index import config_difference
from .predictor import detections_to_numpy, fingerprint_config, resize_input, test_time_input

__all__ = ["ExportedPredictor"]


def read_manifest(folder):
    """export.json of an export folder; a clear error when it is missing."""
    path = Path(folder) / graphs.EXPORT_MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"'{path}' is missing: the exported model's fingerprint is unknown. Export with "
                                "tools/export_model.py, which writes it next to gallery.ts / gallery.onnx.")
    return json.loads(path.read_text())


class ExportedPredictor:
    """The predictor interface of PersonSearchPredictor (`detect`, `embed_boxes`, numpy in and out)
    over an exported gallery graph and its query graph, with the same test-time input: BGR ->
    INPUT.FORMAT, ResizeShortestEdge(INPUT.MIN_SIZE_TEST, MAX_SIZE_TEST); boxes are moved into the
    resized image and detections back to the original one as the PyTorch predictor does.

    `fingerprint`: the exported model's fingerprint from export.json (weights, weights_sha256,
    config) plus "exported": {file name: SHA-256} of the two graph files this predictor runs.
    """

    def __init__(self, cfg, gallery_path, num_threads: int = 0):
        """
        Args:
            cfg: the config the model was exported with (its fingerprint keys must equal export.json's).
            gallery_path: gallery.ts or gallery.onnx written by tools/export_model.py; query.<same
                suffix> and export.json are read from its folder.
            num_threads: ONNX Runtime threads (0: its default).
        """
        gallery_path = Path(gallery_path)
        fmt = {suffix: name for name, suffix in graphs.FORMAT_SUFFIXES.items()}.get(gallery_path.suffix)
        files = graphs.graph_files(gallery_path.parent, fmt) if fmt else {}
        if files.get("gallery") != gallery_path:
            raise ValueError(f"'{gallery_path}' is not an exported gallery graph: give the gallery.ts or "
                             "gallery.onnx written by tools/export_model.py.")
        manifest = read_manifest(gallery_path.parent)
        source = manifest["fingerprint"]
        changed = config_difference(source["config"], fingerprint_config(cfg))
        if changed:
            raise ValueError(f"'{gallery_path}' was exported with another config (keys that differ: {changed}): "
                             "give the --config-file and overrides the model was exported with.")
        exported = {}
        for path in files.values():
            if not path.is_file():
                raise FileNotFoundError(f"'{path}' is missing: export the model again with tools/export_model.py.")
            exported[path.name] = file_sha256(path)
            if manifest["files"].get(path.name) != exported[path.name]:
                raise ValueError(f"'{path}' is not the file export.json lists (SHA-256 differs): export the model "
                                 "again with tools/export_model.py.")
        self.fingerprint = {**source, "exported": exported}
        self.gallery = graphs.load_graph(files["gallery"], num_threads)
        self.query = graphs.load_graph(files["query"], num_threads)
        self.aug, self.input_format = test_time_input(cfg)

    def detect(self, original_image):
        """BGR image [H, W, 3] uint8 -> {"boxes" [N, 4], "scores" [N], "embeddings" [N, D]} (float32
        numpy) in original image coordinates (detector_postprocess: scaled, clipped, empty boxes dropped)."""
        image, _ = resize_input(original_image, self.aug, self.input_format)
        with torch.no_grad():
            boxes, scores, embeddings = self.gallery(image)
        size = tuple(image.shape[1:])
        detections = Instances(size, pred_boxes=Boxes(boxes), scores=scores, pred_embeddings=embeddings)
        original = {"height": original_image.shape[0], "width": original_image.shape[1]}
        return detections_to_numpy(to_original_size(detections, original, size))

    def embed_boxes(self, original_image, boxes):
        """BGR image [H, W, 3] and boxes [K, 4] XYXY in its coordinates -> embeddings float32 [K, D]."""
        image, transform = resize_input(original_image, self.aug, self.input_format)
        boxes = transform.apply_box(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
        with torch.no_grad():
            (embeddings,) = self.query(image, torch.as_tensor(boxes, dtype=torch.float32))
        return embeddings.numpy().astype(np.float32)
