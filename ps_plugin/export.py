"""Exported model: a model's gallery path (detect + embed) and query path (embed given boxes) on one
image, as TorchScript (trace) or ONNX, written to a folder with a manifest.

The gallery graph maps one resized image [3, H, W] (float32, INPUT.FORMAT, the test-time resize
already applied) to its detections in that image's coordinates: boxes [N, 4] XYXY, scores [N],
embeddings [N, D] (L2-normalised). The query graph maps that image and boxes [K, 4] (XYXY, in it) to
their embeddings [K, D]. H, W, N and K are dynamic. Rescaling boxes to and from the original image is
the caller's (as `detector_postprocess` does for the PyTorch model; ps_plugin.search.ExportedPredictor).

`write_export` writes gallery.ts / query.ts and gallery.onnx / query.onnx with `export.json`: the
fingerprint of the exported model (ps_plugin.search.model_fingerprint) and each file's SHA-256, so an
index built with an exported file names the model it came from.

Detectron2's `detectron2.export.TracingAdapter` would flatten the Instances output the same way,
but `detectron2.export` does not import with the pb1-detectron2 0.6 build (its package __init__
imports caffe2), so `GalleryGraph` does the flattening for the three fields the search needs.
"""
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ps_plugin.search.predictor import model_fingerprint
from ps_plugin.structures import QUERY_BOXES, QUERY_EMBEDDINGS
from ps_plugin.utils.files import file_sha256

__all__ = [
    "EXPORT_MANIFEST", "FORMAT_SUFFIXES", "GALLERY_OUTPUTS", "GalleryGraph", "OnnxGraph", "QueryGraph", "export_onnx",
    "export_query_onnx", "graph_files", "load_graph", "trace_gallery", "trace_query", "write_export",
]

GALLERY_OUTPUTS = ("boxes", "scores", "embeddings")
FORMAT_SUFFIXES = {"torchscript": ".ts", "onnx": ".onnx"}
EXPORT_MANIFEST = "export.json"


class GalleryGraph(nn.Module):
    """Eval-mode gallery inference of a PersonSearchMetaArch on one image, as plain tensors.

    forward(image [3, H, W] float32) -> (boxes [N, 4], scores [N], embeddings [N, D]) in input-image
    coordinates: the fields pred_boxes, scores, pred_embeddings of `model.inference`'s instances.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, image: torch.Tensor):
        detections = self.model.inference([{"image": image}], do_postprocess=False)[0]["instances"]
        return detections.pred_boxes.tensor, detections.scores, detections.pred_embeddings


class QueryGraph(nn.Module):
    """Eval-mode query inference of a PersonSearchMetaArch (the query contract, ps_plugin.structures).

    forward(image [3, H, W] float32, boxes [K, 4] XYXY in that image) -> (embeddings [K, D],).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, image: torch.Tensor, boxes: torch.Tensor):
        return (self.model.inference([{"image": image, QUERY_BOXES: boxes}])[0][QUERY_EMBEDDINGS],)


def _trace(graph: nn.Module, inputs: tuple) -> torch.jit.ScriptModule:
    with torch.no_grad():
        return torch.jit.trace(graph, inputs, check_trace=False)


def trace_gallery(model: nn.Module, image: torch.Tensor) -> torch.jit.ScriptModule:
    """TorchScript trace of `GalleryGraph(model)` on an example image [3, H, W] (float32)."""
    return _trace(GalleryGraph(model), (image,))


def trace_query(model: nn.Module, image: torch.Tensor, boxes: torch.Tensor) -> torch.jit.ScriptModule:
    """TorchScript trace of `QueryGraph(model)` on an example image [3, H, W] and boxes [K, 4] in it."""
    return _trace(QueryGraph(model), (image, boxes))


def _export_onnx(graph: nn.Module, inputs: dict, outputs: dict, path, opset: int) -> Path:
    """Write `graph` traced on inputs {name: example tensor} to the ONNX file `path`; `inputs` and
    `outputs` ({name: {axis: dynamic axis name}}) name the dynamic axes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic = {"image": {1: "height", 2: "width"}, "boxes": {0: "boxes"}}
    with torch.no_grad():
        torch.onnx.export(
            graph,
            tuple(inputs.values()),
            str(path),
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes={**{name: dynamic[name] for name in inputs}, **outputs},
            opset_version=opset,
            dynamo=False,
        )
    return path


def export_onnx(model: nn.Module, image: torch.Tensor, path, opset: int = 17) -> Path:
    """Write `GalleryGraph(model)` traced on `image` [3, H, W] to the ONNX file `path`, with dynamic
    image height / width and detection count."""
    outputs = {name: {0: "detections"} for name in GALLERY_OUTPUTS}
    return _export_onnx(GalleryGraph(model), {"image": image}, outputs, path, opset)


def export_query_onnx(model: nn.Module, image: torch.Tensor, boxes: torch.Tensor, path, opset: int = 17) -> Path:
    """Write `QueryGraph(model)` traced on `image` [3, H, W] and `boxes` [K, 4] to the ONNX file
    `path`, with dynamic image height / width and box count."""
    return _export_onnx(QueryGraph(model), {"image": image, "boxes": boxes}, {"embeddings": {0: "boxes"}}, path, opset)


class OnnxGraph:
    """An exported ONNX graph run by ONNX Runtime on CPU: __call__(*inputs) with tensors or arrays in
    the graph's input order -> tuple of float32 tensors in its output order (as a TorchScript trace)."""

    def __init__(self, path, num_threads: int = 0):
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError(
                "onnxruntime is needed to run an exported ONNX model: pip install onnxruntime "
                "(tools/install_env.sh installs it)"
            ) from error
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [node.name for node in self.session.get_inputs()]

    def __call__(self, *inputs) -> tuple:
        feed = {name: np.ascontiguousarray(torch.as_tensor(x).numpy(), dtype=np.float32)
                for name, x in zip(self.input_names, inputs)}
        return tuple(torch.from_numpy(output) for output in self.session.run(None, feed))


def load_graph(path, num_threads: int = 0):
    """A written graph file as a callable on tensors returning a tuple of tensors: `.ts` by
    torch.jit.load, `.onnx` by OnnxGraph (ONNX Runtime, `num_threads`; 0 = its default)."""
    path = Path(path)
    if path.suffix == FORMAT_SUFFIXES["torchscript"]:
        return torch.jit.load(str(path))
    if path.suffix == FORMAT_SUFFIXES["onnx"]:
        return OnnxGraph(path, num_threads)
    raise ValueError(f"'{path}' is not an exported graph: give the gallery.ts or gallery.onnx that "
                     "tools/export_model.py wrote.")


def graph_files(folder, fmt: str) -> dict:
    """{"gallery": folder/gallery<suffix>, "query": folder/query<suffix>} of format `fmt`."""
    return {graph: Path(folder) / f"{graph}{FORMAT_SUFFIXES[fmt]}" for graph in ("gallery", "query")}


def write_export(model: nn.Module, cfg, folder, formats, image: torch.Tensor) -> dict:
    """Trace `model` (built from `cfg`) on `image` [3, H, W] and write its gallery and query graphs
    in each of `formats` ("torchscript", "onnx") to `folder`, then `export.json`: {"fingerprint":
    model_fingerprint(cfg), "files": {file name: SHA-256}}. The query graph is traced with two boxes
    (the image's centre half and its left half). Returns {format: graph_files(folder, format)}."""
    height, width = image.shape[1:]
    boxes = torch.tensor([[width / 4, height / 4, 3 * width / 4, 3 * height / 4], [0, 0, width / 2, height]])
    written = {}
    for fmt in formats:
        files = written[fmt] = graph_files(folder, fmt)
        files["gallery"].parent.mkdir(parents=True, exist_ok=True)
        if fmt == "torchscript":
            trace_gallery(model, image).save(str(files["gallery"]))
            trace_query(model, image, boxes).save(str(files["query"]))
        else:
            export_onnx(model, image, files["gallery"])
            export_query_onnx(model, image, boxes, files["query"])
    manifest = {"fingerprint": model_fingerprint(cfg),
                "files": {p.name: file_sha256(p) for files in written.values() for p in files.values()}}
    (Path(folder) / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=2))
    return written
