"""Sampler outputs -> per-image `Instances` (scores, class-wise NMS, top-k), the shared gallery contract."""
import torch
import torch.nn.functional as F
from detectron2.layers import batched_nms
from detectron2.structures import Boxes, Instances


def detections_from_steps(step_outputs, image_sizes, nms_thresh=0.5, max_detections=100):
    """
    Args:
        step_outputs: list of dicts of [B, N, k] ("pred_logits", "pred_boxes" XYXY, "pred_embeddings");
            several entries (ensemble) are concatenated per image before NMS.
        image_sizes: [(H, W)] of the input images.
        nms_thresh: class-wise NMS IoU threshold; ≤ 0 disables NMS.
        max_detections: top-k by score kept per image.
    Returns:
        list of Instances(pred_boxes, scores, pred_classes, pred_embeddings [n, D] L2-normalised).
    """
    results = []
    for i, image_size in enumerate(image_sizes):
        scores = torch.cat([out["pred_logits"][i, :, 0] for out in step_outputs]).sigmoid()
        boxes = torch.cat([out["pred_boxes"][i] for out in step_outputs])
        embeddings = torch.cat([out["pred_embeddings"][i] for out in step_outputs])
        classes = torch.zeros_like(scores, dtype=torch.long)
        if nms_thresh > 0:
            keep = batched_nms(boxes, scores, classes, nms_thresh)
        else:
            keep = scores.argsort(descending=True)
        keep = keep[:max_detections]
        instances = Instances(image_size)
        instances.pred_boxes = Boxes(boxes[keep])
        instances.pred_boxes.clip(image_size)
        instances.scores = scores[keep]
        instances.pred_classes = classes[keep]
        instances.pred_embeddings = F.normalize(embeddings[keep], dim=-1)
        results.append(instances)
    return results
