"""Exported gallery path: a model's detect + embed on one image, as TorchScript (trace) or ONNX.

The exported graph maps one resized image [3, H, W] (float32, INPUT.FORMAT, the test-time resize
already applied) to its detections in that image's coordinates: boxes [N, 4] XYXY, scores [N],
embeddings [N, D] (L2-normalised). H, W and N are dynamic. Rescaling boxes to the original image is
the caller's (as `detector_postprocess` does for the PyTorch model).

Detectron2's `detectron2.export.TracingAdapter` would flatten the Instances output the same way,
but `detectron2.export` does not import with the pb1-detectron2 0.6 build (its package __init__
imports caffe2), so `GalleryGraph` does the flattening for the three fields the search needs.
"""
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["GALLERY_OUTPUTS", "GalleryGraph", "OnnxGallery", "export_onnx", "trace_gallery"]

GALLERY_OUTPUTS = ("boxes", "scores", "embeddings")


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


def trace_gallery(model: nn.Module, image: torch.Tensor) -> torch.jit.ScriptModule:
    """TorchScript trace of `GalleryGraph(model)` on an example image [3, H, W] (float32)."""
    with torch.no_grad():
        return torch.jit.trace(GalleryGraph(model), (image,), check_trace=False)


def export_onnx(model: nn.Module, image: torch.Tensor, path, opset: int = 17) -> Path:
    """Write `GalleryGraph(model)` traced on `image` [3, H, W] to the ONNX file `path`, with dynamic
    image height / width and detection count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic_axes = {"image": {1: "height", 2: "width"}}
    dynamic_axes.update({name: {0: "detections"} for name in GALLERY_OUTPUTS})
    with torch.no_grad():
        torch.onnx.export(
            GalleryGraph(model),
            (image,),
            str(path),
            input_names=["image"],
            output_names=list(GALLERY_OUTPUTS),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            dynamo=False,
        )
    return path


class OnnxGallery:
    """An exported gallery graph run by ONNX Runtime on CPU: __call__(image [3, H, W]) ->
    {"boxes": [N, 4], "scores": [N], "embeddings": [N, D]} as numpy float32 arrays."""

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

    def __call__(self, image) -> dict:
        image = image.numpy() if isinstance(image, torch.Tensor) else image
        outputs = self.session.run(list(GALLERY_OUTPUTS), {"image": np.ascontiguousarray(image, dtype=np.float32)})
        return dict(zip(GALLERY_OUTPUTS, outputs))
