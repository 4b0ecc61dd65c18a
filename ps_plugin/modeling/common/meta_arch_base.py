"""`PersonSearchMetaArch`: the eval-mode half of the model contract (ps_plugin.structures), written once.

A method subclasses it and supplies two hooks, `detect` and `embed_boxes`, plus its training
forward `losses`; the base splits a batch into query and gallery inputs, runs the backbone once,
attaches `pred_embeddings`, embeds QUERY_BOXES and GT_BOXES_FOR_REID and rescales detections to the
original image. docs/NEW_METHOD.md shows a new method's minimal shape.
"""
from abc import ABC, abstractmethod
from typing import Dict, List, Sequence

import torch
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import ImageList, Instances
from torch import nn

from ps_plugin.structures import GT_BOXES_FOR_REID, GT_EMBEDDINGS, QUERY_BOXES, QUERY_EMBEDDINGS

__all__ = ["PersonSearchMetaArch", "as_box_tensor", "select_images", "split_per_image", "to_original_size"]


def as_box_tensor(boxes, device) -> torch.Tensor:
    """Boxes given in an input dict (tensor, array or nested list; possibly empty) -> float32 [K, 4]."""
    return torch.as_tensor(boxes, dtype=torch.float32, device=device).reshape(-1, 4)


def split_per_image(rows: torch.Tensor, sizes: Sequence[int]) -> List[torch.Tensor]:
    """Rows [sum K_i, ...] of a batch -> list of [K_i, ...] per image. A one-image batch keeps the
    whole tensor, so a trace (tools/export_model.py) does not freeze the row count K_0."""
    if len(sizes) == 1:
        return [rows]
    return list(rows.split(list(sizes)))


def select_images(images: ImageList, features: Dict[str, torch.Tensor], indices: Sequence[int]):
    """The sub-batch `indices` of an ImageList and of its feature maps {name: [B, C, H, W]}."""
    if len(indices) == len(images):
        return images, features
    index = torch.as_tensor(indices, device=images.tensor.device)
    sub_images = ImageList(images.tensor[index], [images.image_sizes[i] for i in indices])
    return sub_images, {name: feature[index] for name, feature in features.items()}


def to_original_size(detections: Instances, input_dict: dict, image_size) -> Instances:
    """Detections in the input image (h, w) = image_size -> the original "height" x "width" of
    `input_dict` (the input image's size when the dict has none)."""
    return detector_postprocess(
        detections, input_dict.get("height", image_size[0]), input_dict.get("width", image_size[1])
    )


class PersonSearchMetaArch(nn.Module, ABC):
    """Base of every ps_plugin meta-architecture.

    `forward` returns `losses(batched_inputs)` in training and `inference(batched_inputs)` in eval
    mode; inference implements the output contract of ps_plugin.structures for any mix of query
    and gallery inputs, outputs in input order. One backbone pass covers the whole batch, so an
    image's features are padded like its batch neighbours' (Detectron2's convention).

    A subclass sets `self.backbone` (a Detectron2 Backbone), calls `register_pixel_statistics`
    (or inherits buffers `pixel_mean` / `pixel_std` [C, 1, 1] from a Detectron2 parent), and
    implements `detect`, `embed_boxes` and `losses`. It declares no __init__, so it combines with a
    Detectron2 meta-architecture: `class M(PersonSearchMetaArch, GeneralizedRCNN)` keeps
    GeneralizedRCNN's configurable constructor.
    """

    @abstractmethod
    def detect(self, images: ImageList, features: Dict[str, torch.Tensor], inputs: List[dict]) -> List[Instances]:
        """Gallery detection.

        Args:
            images: the gallery images, normalised and padded, [B, C, H, W] with image_sizes.
            features: the backbone's maps of those images, {name: [B, C_l, H_l, W_l]}.
            inputs: their B input dicts (for error messages or per-image options).
        Returns:
            B Instances in input-image coordinates with pred_boxes [N, 4], scores [N], pred_classes
            [N]. A detector that produces embeddings jointly with its boxes also sets
            pred_embeddings [N, D] (L2-normalised); otherwise the base fills them by `embed_boxes`.
        """

    @abstractmethod
    def embed_boxes(self, features: Dict[str, torch.Tensor], boxes: List[torch.Tensor]) -> List[torch.Tensor]:
        """Re-id embeddings of given boxes.

        Args:
            features: backbone maps of B images, {name: [B, C_l, H_l, W_l]}.
            boxes: B float32 tensors [K_i, 4], XYXY in input-image coordinates (K_i may be 0).
        Returns:
            B tensors [K_i, D], L2-normalised, row k for box k.
        """

    @abstractmethod
    def losses(self, batched_inputs: List[dict]) -> Dict[str, torch.Tensor]:
        """The training forward: mapped training inputs -> dict of scalar losses."""

    def register_pixel_statistics(self, pixel_mean: Sequence[float], pixel_std: Sequence[float]):
        """Non-persistent buffers pixel_mean / pixel_std [C, 1, 1] (MODEL.PIXEL_MEAN / PIXEL_STD)."""
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: List[dict]) -> ImageList:
        """"image" [C, H_i, W_i] (uint8 or float, INPUT.FORMAT) -> float32 (x - mean) / std, zero-padded
        to a common size divisible by the backbone's size_divisibility."""
        images = [(x["image"].to(self.device).float() - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        return ImageList.from_tensors(images, self.backbone.size_divisibility)

    def extract_features(self, images: ImageList) -> Dict[str, torch.Tensor]:
        """The maps `detect` and `embed_boxes` receive: the backbone's {name: [B, C_l, H_l, W_l]}.
        A method that also needs the input image there (OLA's instance crops) adds it under its own
        name; `select_images` takes sub-batches of every entry alike."""
        return self.backbone(images.tensor)

    def forward(self, batched_inputs: List[dict]):
        if self.training:
            return self.losses(batched_inputs)
        return self.inference(batched_inputs)

    def inference(self, batched_inputs: List[dict], do_postprocess: bool = True) -> List[dict]:
        """Eval-mode outputs, one dict per input, in input order (keys: ps_plugin.structures):
        query inputs -> {QUERY_EMBEDDINGS}; gallery inputs -> {"instances"} (in the original image
        when `do_postprocess`, else in the input image), plus GT_EMBEDDINGS with GT_BOXES_FOR_REID."""
        images = self.preprocess_image(batched_inputs)
        features = self.extract_features(images)
        outputs = [{} for _ in batched_inputs]
        query = [i for i, x in enumerate(batched_inputs) if QUERY_BOXES in x]
        gallery = [i for i, x in enumerate(batched_inputs) if QUERY_BOXES not in x]
        if query:
            _, query_features = select_images(images, features, query)
            self._embed_queries([batched_inputs[i] for i in query], query_features, [outputs[i] for i in query])
        if gallery:
            self._search_gallery(
                [batched_inputs[i] for i in gallery],
                *select_images(images, features, gallery),
                [outputs[i] for i in gallery],
                do_postprocess,
            )
        return outputs

    def attach_embeddings(self, features: Dict[str, torch.Tensor], detections: List[Instances]) -> None:
        """Set pred_embeddings [N_i, D] = embed_boxes(pred_boxes) on the detections that lack them
        (one per image of `features`, input-image coordinates)."""
        missing = [i for i, det in enumerate(detections) if not det.has("pred_embeddings")]
        if not missing:
            return
        if len(missing) < len(detections):
            raise ValueError(
                f"{type(self).__name__}.detect set pred_embeddings on some images only (missing on {missing}); "
                "set them on every image or on none."
            )
        embeddings = self.embed_boxes(features, [det.pred_boxes.tensor for det in detections])
        for det, det_embeddings in zip(detections, embeddings):
            det.pred_embeddings = det_embeddings

    def _embed_queries(self, inputs, features, outputs):
        boxes = [as_box_tensor(x[QUERY_BOXES], self.device) for x in inputs]
        for output, embeddings in zip(outputs, self.embed_boxes(features, boxes)):
            output[QUERY_EMBEDDINGS] = embeddings

    def _search_gallery(self, inputs, images, features, outputs, do_postprocess):
        detections = self.detect(images, features, inputs)
        self.attach_embeddings(features, detections)
        if any(GT_BOXES_FOR_REID in x for x in inputs):
            gt_boxes = [as_box_tensor(x.get(GT_BOXES_FOR_REID, ()), self.device) for x in inputs]
            for x, output, embeddings in zip(inputs, outputs, self.embed_boxes(features, gt_boxes)):
                if GT_BOXES_FOR_REID in x:
                    output[GT_EMBEDDINGS] = embeddings
        for x, det, image_size, output in zip(inputs, detections, images.image_sizes, outputs):
            output["instances"] = to_original_size(det, x, image_size) if do_postprocess else det
