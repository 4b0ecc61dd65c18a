"""Stage 1 of LAID (Fig. 2) on detections already made: CAIM per target image, hard negatives,
clustering into pseudo identities, and the pseudo-labelled target annotations. Pure functions of
their inputs, so every rank computes the same result (ps_plugin.engine.domain_adaptation runs them).
"""
from dataclasses import dataclass
from typing import List

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.structures import BoxMode

from ps_plugin.modeling.common.clustering import cluster_features

from .caim import box_iou

__all__ = [
    "ImageDetections",
    "PseudoLabels",
    "cluster_tracks",
    "hard_negatives",
    "pseudo_annotations",
    "pseudo_identities",
    "track_features",
]


@dataclass
class ImageDetections:
    """One target image's detections in original-image coordinates: boxes [N, 4] XYXY, scores [N],
    features [N, D] (L2-normalised embeddings)."""

    boxes: torch.Tensor
    scores: torch.Tensor
    features: torch.Tensor


@dataclass
class PseudoLabels:
    """labels: per image, int64 [K_m] pseudo identity of each cached track (0 .. T-1: clusters first,
    then one per outlier); centroids [T, D] (L2-normalised mean of each identity's features);
    num_clusters (identities with two or more tracks)."""

    labels: List[torch.Tensor]
    centroids: torch.Tensor
    num_clusters: int

    @property
    def num_outliers(self):
        return len(self.centroids) - self.num_clusters


def hard_negatives(detections, kept_boxes, min_score, max_score, max_iou):
    """DSCA's hard negatives of one image: detections scoring in [min_score, max_score) whose IoU with
    every kept box is <= max_iou -> features [H, D]."""
    scores = detections.scores
    candidates = (scores >= min_score) & (scores < max_score)
    if len(kept_boxes) and candidates.any():
        candidates &= box_iou(detections.boxes, kept_boxes).max(dim=1).values <= max_iou
    return detections.features[candidates]


def track_features(caches):
    """The tracks' CAIM-smoothed features of every image, renormalised -> [sum K_m, D]."""
    return F.normalize(torch.cat([c.features for c in caches]).float(), dim=1)


def cluster_tracks(caches, eps, min_samples, k1, k2):
    """DBSCAN (LAID: eps 0.5, min_samples 4) on the k-reciprocal Jaccard distance of `track_features`
    -> (labels int64 [sum K_m]: clusters 0 .. C-1, then one label per outlier; C)."""
    features = track_features(caches)
    if len(features) == 0:
        return torch.zeros(0, dtype=torch.int64), 0
    image_ids = np.repeat(np.arange(len(caches)), [len(c) for c in caches])
    result = cluster_features(features, image_ids, eps, min_samples, k1, k2, context=False)
    return torch.as_tensor(result.labels, dtype=torch.int64), result.num_clusters


def pseudo_identities(caches, labels, num_clusters):
    """The tracks' labels (cluster_tracks) -> PseudoLabels, with each identity's normalised mean feature."""
    features = track_features(caches)
    num_labels = int(labels.max()) + 1 if len(labels) else 0
    sums = features.new_zeros(num_labels, features.shape[1]).index_add_(0, labels, features)
    return PseudoLabels(list(labels.split([len(c) for c in caches])), F.normalize(sums, dim=1), num_clusters)


def pseudo_annotations(cache, labels, first_row):
    """A target image's annotations from its tracks: box XYXY_ABS, category 0, person_id = the proxy
    row first_row + label (ProxyMemory.target_row), "track_id" the CAIM track. Plain numbers only (the
    mode as an int), so a checkpoint holding them loads with torch.load(weights_only=True)."""
    return [
        {"bbox": box, "bbox_mode": int(BoxMode.XYXY_ABS), "category_id": 0, "person_id": first_row + label, "track_id": track}
        for box, label, track in zip(cache.boxes.tolist(), labels.tolist(), cache.track_ids.tolist())
    ]

