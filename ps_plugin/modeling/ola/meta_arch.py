"""OLA: weakly supervised person search on the baseline's Faster R-CNN (Zhu et al., "Optimizing Label
Assignment for Weakly Supervised Person Search", AAAI 2025).

Training reads ground-truth boxes only, never `gt_pids`: identities are pseudo labels of the
instance memory, clustered before every epoch (ps_plugin.engine.hooks).
"""
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.data import get_detection_dataset_dicts
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import Boxes, Instances
from torchvision.ops import roi_align

from ps_plugin.modeling.baseline import PersonSearchRCNN
from ps_plugin.modeling.common import ClusterMemoryModel, HybridClusterMemory, PseudoLabelState
from ps_plugin.modeling.common.clustering import cluster_features, same_image_pairs

from .dual_memory import DualMemoryEnhancement
from .prototype_matching import PrototypeMatcher

__all__ = ["OLA", "count_training_boxes"]

# The normalised, padded input [B, 3, H, W] rides along with the backbone maps (extract_features), so
# embed_boxes can crop the instance branch's inputs for queries, detections and GT boxes alike.
INPUT_IMAGE = "ola_input_image"


def count_training_boxes(dataset_names):
    """Number of annotated boxes in the training sets (the memory's slots)."""
    try:
        records = get_detection_dataset_dicts(list(dataset_names), filter_empty=False)
    except (FileNotFoundError, KeyError) as error:
        raise type(error)(
            f"{error}\nOLA sizes its memories from DATASETS.TRAIN={tuple(dataset_names)}. Without the training "
            "data (inference), set PS.OLA.MEMORY.SIZE to the checkpoint's number of training boxes."
        ) from error
    return sum(len(r.get("annotations", ())) for r in records)


@META_ARCH_REGISTRY.register()
class OLA(PersonSearchRCNN, ClusterMemoryModel):
    """Faster R-CNN + instance branch + dual hybrid memories (Fig. 2).

    Training input: {"image", "instances" (gt_boxes, gt_classes, gt_box_ids), "dataset_name",
    "image_id"}; gt_pids is dropped before anything sees it. Losses: RPN and box losses (Max-IoU
    targets), "loss_reid_proposal" / "loss_reid_instance" (SpCL hybrid memories M_P / M_I, pseudo
    labels; proposals labelled by prototype matching), "loss_similarity" (1 - cos between a Max-IoU
    positive proposal and its GT's crop).

    Inference: detections and boxes are embedded as [proposal || crop] renormalised (2D-dim;
    PS.OLA.TEST_EMBEDDING "concat") or by the proposal branch alone ("proposal").
    """

    @configurable
    def __init__(self, *, memory_size, embed_dim, crop_size, test_embedding, temperature, momentum,
                 loss_weights, matcher, num_background, enhancement, cluster_options, cluster_start_epoch=0,
                 **kwargs):
        super().__init__(**kwargs)
        if test_embedding not in ("concat", "proposal"):
            raise ValueError(f"PS.OLA.TEST_EMBEDDING must be 'concat' or 'proposal', got {test_embedding!r}")
        self.proposal_memory = HybridClusterMemory(memory_size, embed_dim, momentum, temperature)
        self.instance_memory = HybridClusterMemory(memory_size, embed_dim, momentum, temperature)
        self.pseudo_label_state = PseudoLabelState()
        self.embed_dim = embed_dim
        self.crop_size = tuple(crop_size)
        self.test_embedding = test_embedding
        self.loss_weights = loss_weights
        self.matcher = matcher
        self.num_background = num_background
        self.enhancement = enhancement
        self.cluster_options = cluster_options
        self.cluster_start_epoch = cluster_start_epoch
        # SpCL's independence threshold, set by the first clustering with the reliability criterion (NaN: none yet)
        self.register_buffer("independence_threshold", torch.tensor(float("nan")))
        self._slot_offsets = None
        self._slot_images = None

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        node = cfg.PS.OLA
        pm = node.PM
        ret.update(
            memory_size=node.MEMORY.SIZE or count_training_boxes(cfg.DATASETS.TRAIN),
            embed_dim=cfg.PS.REID.EMBED_DIM,
            crop_size=node.CROP_SIZE,
            test_embedding=node.TEST_EMBEDDING,
            temperature=node.MEMORY.TEMPERATURE,
            momentum=node.MEMORY.MOMENTUM,
            loss_weights={
                "loss_reid_proposal": node.MEMORY.PROPOSAL_WEIGHT,
                "loss_reid_instance": node.MEMORY.INSTANCE_WEIGHT,
                "loss_similarity": node.MEMORY.SIMILARITY_WEIGHT,
            },
            matcher=PrototypeMatcher(pm.MODE, pm.ALPHA, pm.DYNAMIC_K, pm.K, pm.TOP_Q, pm.EPSILON, pm.ITERATIONS)
            if pm.ENABLED else None,
            num_background=pm.NUM_BACKGROUND,
            enhancement=DualMemoryEnhancement(cfg.PS.REID.EMBED_DIM, node.DMBE.NUM_HEADS) if node.DMBE.ENABLED else None,
            cluster_options={
                "eps": node.CLUSTER.EPS,
                "min_samples": node.CLUSTER.MIN_SAMPLES,
                "k1": node.CLUSTER.K1,
                "k2": node.CLUSTER.K2,
                "context": node.CLUSTER.CONTEXT,
                "beta": node.CLUSTER.BETA,
                "edge_distance": node.CLUSTER.EDGE_DISTANCE,
                "reliability_delta": node.CLUSTER.RELIABILITY_DELTA if node.CLUSTER.RELIABILITY else 0.0,
            },
        )
        if node.CLUSTER.EPS <= 0:
            raise ValueError(f"PS.OLA.CLUSTER.EPS must be > 0, got {node.CLUSTER.EPS}")
        if node.CLUSTER.RELIABILITY and not 0 < node.CLUSTER.RELIABILITY_DELTA < node.CLUSTER.EPS:
            raise ValueError(f"PS.OLA.CLUSTER.RELIABILITY_DELTA must be in (0, PS.OLA.CLUSTER.EPS = "
                             f"{node.CLUSTER.EPS}), got {node.CLUSTER.RELIABILITY_DELTA}")
        if not 0 <= node.CLUSTER.BETA <= 1:
            raise ValueError(f"PS.OLA.CLUSTER.BETA must be in [0, 1], got {node.CLUSTER.BETA}")
        if node.CLUSTER.START_EPOCH < 0:
            raise ValueError(f"PS.OLA.CLUSTER.START_EPOCH must be >= 0, got {node.CLUSTER.START_EPOCH}")
        ret["cluster_start_epoch"] = node.CLUSTER.START_EPOCH
        return ret

    # ---- embeddings -------------------------------------------------------------------------
    def extract_features(self, images):
        features = self.backbone(images.tensor)
        features[INPUT_IMAGE] = images.tensor
        return features

    def embed_crops(self, image_tensor, boxes):
        """Instance branch: RoIAlign crops (CROP_SIZE) of boxes [K_i, 4] (XYXY, input image) from the
        normalised input [B, 3, H, W], through the shared backbone and re-id head -> [sum K_i, D]."""
        num_crops = sum(len(b) for b in boxes)
        if num_crops == 0:
            return image_tensor.new_zeros(0, self.embed_dim)
        crops = roi_align(image_tensor, [b.to(image_tensor.dtype) for b in boxes], self.crop_size, 1.0, 2, True)
        height, width = self.crop_size
        whole = Boxes(crops.new_tensor([[0.0, 0.0, width, height]]))
        embeddings, _ = self.roi_heads.embed_boxes(self.backbone(crops), [whole] * num_crops)
        return embeddings

    def embed_boxes(self, features, boxes):
        """[proposal || crop] / sqrt(2) per box ("concat"), or the proposal branch alone."""
        proposals = super().embed_boxes(features, boxes)
        if self.test_embedding == "proposal":
            return proposals
        crops = self.embed_crops(features[INPUT_IMAGE], boxes).split([len(b) for b in boxes])
        return [F.normalize(torch.cat([p, c], dim=1), dim=1) for p, c in zip(proposals, crops)]

    def detect(self, images, features, inputs):
        detections = super().detect(images, features, inputs)
        if self.test_embedding == "concat":
            boxes = [d.pred_boxes.tensor for d in detections]
            crops = self.embed_crops(features[INPUT_IMAGE], boxes).split([len(b) for b in boxes])
            for det, crop in zip(detections, crops):
                det.pred_embeddings = F.normalize(torch.cat([det.pred_embeddings, crop], dim=1), dim=1)
        return detections

    # ---- training boxes and pseudo labels (ClusterMemoryModel) --------------------------------
    def index_training_boxes(self, records):
        offsets, images, total = {}, [], 0
        for index, record in enumerate(records):
            offsets[(record.get("dataset_name"), record["image_id"])] = total
            count = len(record.get("annotations", ()))
            images += [index] * count
            total += count
        if total != len(self.instance_memory):
            datasets = sorted({r.get("dataset_name", "?") for r in records})
            raise ValueError(
                f"OLA's memories hold {len(self.instance_memory)} slots, but the training set {datasets} has "
                f"{total} boxes: set PS.OLA.MEMORY.SIZE to {total} (or 0 to count DATASETS.TRAIN)."
            )
        self._slot_offsets = offsets
        self._slot_images = torch.tensor(images, dtype=torch.long).numpy()
        return total

    def _slots(self, x):
        if self._slot_offsets is None:
            raise RuntimeError("OLA: the training boxes are not numbered; train with PersonSearchTrainer "
                               "(its MemoryInitHook calls index_training_boxes) or call index_training_boxes(records).")
        key = (x.get("dataset_name"), x["image_id"])
        if key not in self._slot_offsets:
            raise KeyError(f"OLA: training image {key} is not among the records given to index_training_boxes")
        return self._slot_offsets[key] + x["instances"].gt_box_ids.to(self.device)

    def _box_targets(self, batched_inputs):
        """Ground truth without identities: gt_boxes, gt_classes, gt_slots, gt_index (row in the image)."""
        targets = []
        for x in batched_inputs:
            source = x["instances"].to(self.device)
            target = Instances(source.image_size, gt_boxes=source.gt_boxes, gt_classes=source.gt_classes)
            target.gt_slots = self._slots(x)
            target.gt_index = torch.arange(len(source), device=self.device)
            targets.append(target)
        return targets

    @torch.no_grad()
    def extract_memory_features(self, batched_inputs):
        images = self.preprocess_image(batched_inputs)
        features = self.extract_features(images)
        boxes = [x["instances"].gt_boxes.tensor.to(self.device) for x in batched_inputs]
        slots = torch.cat([self._slots(x) for x in batched_inputs])
        proposal = torch.cat(PersonSearchRCNN.embed_boxes(self, features, boxes))
        return slots, {"proposal": proposal, "instance": self.embed_crops(images.tensor, boxes)}

    def write_memory(self, slots, features):
        self.proposal_memory.write(features["proposal"], slots)
        self.instance_memory.write(features["instance"], slots)

    def pseudo_labels(self, epoch):
        if self._slot_images is None:
            raise RuntimeError("OLA.pseudo_labels: call index_training_boxes first")
        if epoch < self.cluster_start_epoch:  # instance discrimination: every box its own class
            num_slots = len(self._slot_images)
            return np.arange(num_slots), {"clusters": 0, "outliers": num_slots, "same_image_pairs": 0}
        threshold = None if self.independence_threshold.isnan() else float(self.independence_threshold)
        result = cluster_features(self.instance_memory.features.cpu(), self._slot_images,
                                  independence_threshold=threshold, **self.cluster_options)
        statistics = {"clusters": result.num_clusters, "outliers": result.num_outliers,
                      "same_image_pairs": same_image_pairs(result.labels, self._slot_images)}
        if result.independence_threshold is not None:  # OLA's code keeps the first one for every later epoch
            self.independence_threshold.fill_(result.independence_threshold)
            statistics["independence_threshold"] = result.independence_threshold
        return result.labels, statistics

    def set_pseudo_labels(self, labels):
        self.proposal_memory.set_labels(labels)
        self.instance_memory.set_labels(labels)

    # ---- training ---------------------------------------------------------------------------
    def losses(self, batched_inputs):
        images = self.preprocess_image(batched_inputs)
        features = self.extract_features(images)
        targets = self._box_targets(batched_inputs)
        proposals, losses = self.propose(images, features, targets, batched_inputs)
        sampled = self.roi_heads.label_and_sample_proposals(proposals, targets)
        predictions, reid_features = self.roi_heads.box_predictions_and_reid_features(
            features, [p.proposal_boxes for p in sampled]
        )
        losses.update(self.roi_heads.box_predictor.losses(predictions, sampled))
        proposal_embeddings, _ = self.roi_heads.reid_branch(reid_features)
        crop_embeddings = self.embed_crops(images.tensor, [t.gt_boxes.tensor for t in targets])
        losses.update(self._reid_losses(batched_inputs, images, sampled, predictions, targets,
                                        proposal_embeddings, crop_embeddings))
        return losses

    def _max_iou_labels(self, sample):
        """Max-IoU GT row of each sampled proposal, -1 for background: int64 [n] (Detectron2 sets no
        gt_* field on the proposals of an image without ground truth)."""
        num_classes = self.roi_heads.num_classes
        foreground = (sample.gt_classes >= 0) & (sample.gt_classes < num_classes)
        if not sample.has("gt_index"):
            return torch.full_like(sample.gt_classes, -1)
        return torch.where(foreground, sample.gt_index, -1)

    def _assign(self, batched_inputs, images, sampled, predictions, targets, proposals, crops):
        """Per image, int64 [n]: the GT row each sampled proposal learns from, -1 for none."""
        max_iou = [self._max_iou_labels(p) for p in sampled]
        if self.matcher is None:
            return max_iou
        foreground = [labels >= 0 for labels in max_iou]
        background = None
        if self.matcher.mode == "paper":
            background = self._background_prototypes(images, sampled, foreground)
        predicted = self.roi_heads.box_predictor.predict_boxes(predictions, sampled)
        return self.matcher(
            [b.detach()[:, :4] for b in predicted],
            [p.proposal_boxes.tensor for p in sampled],
            [p.detach() for p in proposals],
            foreground,
            [t.gt_boxes.tensor for t in targets],
            [c.detach() for c in crops],
            background,
            [str(x.get("file_name", x.get("image_id"))) for x in batched_inputs],
        )

    @torch.no_grad()
    def _background_prototypes(self, images, sampled, foreground):
        """G_bg of eq. 4 per image: the mean crop embedding of its first NUM_BACKGROUND background
        proposals (the sampler's random draw), renormalised; zeros when it has none."""
        boxes = [p.proposal_boxes.tensor[~fg][: self.num_background] for p, fg in zip(sampled, foreground)]
        crops = self.embed_crops(images.tensor, boxes).split([len(b) for b in boxes])
        return [F.normalize(c.mean(dim=0), dim=0) if len(c) else c.new_zeros(self.embed_dim) for c in crops]

    def _zero_with_every_parameter(self, proposal_embeddings):
        """0, but with a graph to the re-id head and DMBE even when a batch has no positive proposal
        (DDP expects a gradient for every parameter on every rank)."""
        zero = proposal_embeddings.sum() * 0.0
        if self.enhancement is not None:
            zero = zero + sum(p.sum() for p in self.enhancement.parameters()) * 0.0
        return zero

    def _reid_losses(self, batched_inputs, images, sampled, predictions, targets, proposal_embeddings, crop_embeddings):
        proposals = proposal_embeddings.split([len(p) for p in sampled])
        crops = crop_embeddings.split([len(t) for t in targets])
        assigned = self._assign(batched_inputs, images, sampled, predictions, targets, proposals, crops)
        proposal_rows, proposal_slots, instance_rows, similarity = [], [], [], []
        for p, crop, target, labels, sample in zip(proposals, crops, targets, assigned, sampled):
            matched = self._max_iou_labels(sample)
            similarity.append(1 - (p[matched >= 0] * crop[matched[matched >= 0]]).sum(dim=1))
            positive = labels >= 0
            enhanced_proposals, enhanced_crops = p[positive], crop
            if self.enhancement is not None:
                enhanced_proposals, enhanced_crops = self.enhancement(enhanced_proposals, crop)
            proposal_rows.append(enhanced_proposals)
            proposal_slots.append(target.gt_slots[labels[positive]])
            instance_rows.append(enhanced_crops)
        proposal_rows, proposal_slots = torch.cat(proposal_rows), torch.cat(proposal_slots)
        instance_rows = torch.cat(instance_rows)
        instance_slots = torch.cat([t.gt_slots for t in targets])
        similarity = torch.cat(similarity)
        losses = {
            "loss_reid_proposal": self.proposal_memory.loss(proposal_rows, proposal_slots),
            "loss_reid_instance": self.instance_memory.loss(instance_rows, instance_slots),
            "loss_similarity": (similarity.mean() if len(similarity) else 0.0) + self._zero_with_every_parameter(proposal_embeddings),
        }
        self.proposal_memory.update(proposal_rows, proposal_slots)
        self.instance_memory.update(instance_rows, instance_slots)
        return {name: self.loss_weights[name] * value for name, value in losses.items()}
