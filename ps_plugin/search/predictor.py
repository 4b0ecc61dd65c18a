"""`PersonSearchPredictor`: Detectron2's DefaultPredictor plus the query contract (embed given boxes)."""
import numpy as np
import torch
from detectron2.engine import DefaultPredictor

from ps_plugin.structures import QUERY_BOXES, QUERY_EMBEDDINGS

__all__ = ["PersonSearchPredictor"]


class PersonSearchPredictor(DefaultPredictor):
    """DefaultPredictor (checkpoint from cfg.MODEL.WEIGHTS, BGR input converted to cfg.INPUT.FORMAT,
    ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, MAX_SIZE_TEST)) for any ps_plugin meta-architecture.

    `detect(image)` runs the gallery contract; `embed_boxes(image, boxes)` the query contract, with
    the boxes moved into the resized image by the same transform as the pixels.
    """

    def detect(self, original_image):
        """BGR image [H, W, 3] uint8 -> numpy dict of its detections in original image coordinates:
        "boxes" float32 [N, 4] XYXY, "scores" float32 [N], "embeddings" float32 [N, D]."""
        instances = self(original_image)["instances"].to("cpu")
        if not instances.has("pred_embeddings"):
            raise TypeError(
                f"{self.cfg.MODEL.META_ARCHITECTURE} returned no 'pred_embeddings': person search needs a "
                "meta-architecture whose gallery output carries re-id embeddings (e.g. PersonSearchRCNN)."
            )
        return {
            "boxes": instances.pred_boxes.tensor.numpy().astype(np.float32),
            "scores": instances.scores.numpy().astype(np.float32),
            "embeddings": instances.pred_embeddings.numpy().astype(np.float32),
        }

    def embed_boxes(self, original_image, boxes):
        """BGR image [H, W, 3] and boxes [K, 4] XYXY in its coordinates -> embeddings float32 [K, D]."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        with torch.no_grad():
            image = original_image[:, :, ::-1] if self.input_format == "RGB" else original_image
            transform = self.aug.get_transform(image)
            inputs = {
                "image": torch.as_tensor(transform.apply_image(image).astype("float32").transpose(2, 0, 1)),
                "height": image.shape[0],
                "width": image.shape[1],
                QUERY_BOXES: torch.as_tensor(transform.apply_box(boxes), dtype=torch.float32),
            }
            output = self.model([inputs])[0]
        if QUERY_EMBEDDINGS not in output:
            raise TypeError(
                f"{self.cfg.MODEL.META_ARCHITECTURE} returned no '{QUERY_EMBEDDINGS}' for '{QUERY_BOXES}': person "
                "search needs a meta-architecture that follows the ps_plugin query contract (ps_plugin.structures)."
            )
        return output[QUERY_EMBEDDINGS].cpu().numpy().astype(np.float32)
