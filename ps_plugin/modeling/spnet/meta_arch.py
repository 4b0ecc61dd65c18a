"""`SPNet`: the Swap Path Network meta-architecture (Sec. 3, Fig. 3), QC or OC mode."""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import batched_nms
from detectron2.modeling import META_ARCH_REGISTRY, build_anchor_generator, build_backbone
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.structures import Boxes, Instances, pairwise_iou

from ps_plugin.modeling.baseline import resolve_num_pids
from ps_plugin.modeling.common import OIMLoss, PersonSearchMetaArch
from ps_plugin.modeling.common.meta_arch_base import as_box_tensor, to_original_size
from ps_plugin.structures import GT_BOXES_FOR_REID, QUERY_BOXES, QUERY_EMBEDDINGS, VIEWS, QueryConditionedSearch

from .box_detector import box_class_loss, box_regression_loss
from .cascade import SPNetCascade
from .checkpoint import install_stage_filling_hook
from .embedders import AnchorEmbedder, build_box_embedder
from .fixed_norm import build_logits_layer
from .matching import anchor_focal_loss, build_anchor_matcher, match_boxes, sample_balanced
from .moco import MomentumContrast
from .pair_sampling import box_identity_labels, sample_query_pairs

__all__ = ["SPNet", "flatten_views"]


def flatten_views(batched_inputs):
    """Training inputs -> one list of view dicts (k-view inputs {VIEWS: [...]} are expanded in order)."""
    views = []
    for record in batched_inputs:
        views.extend(record.get(VIEWS, [record]))
    return views


@dataclass
class TrainRows:
    """The boxes the Box Detector is trained on, one row each (all units concatenated).

    boxes [R, 4] inputs of the current stage; offsets [R, d] x_o; labels [R] in {1, 0, -1};
    image [R] view index of the gallery image; target_gt [R] index of the matched GT box in that
    view's instances (-1: negative); query [R] index of the QC query box in the concatenated GT
    boxes (-1 in OC); unit [R] index of the (image) or (query, image) unit; pair_target [R] the
    QC pair's target GT index in the gallery view (-1: absent, and in OC).
    """

    boxes: torch.Tensor
    offsets: torch.Tensor
    labels: torch.Tensor
    image: torch.Tensor
    target_gt: torch.Tensor
    query: torch.Tensor
    unit: torch.Tensor
    pair_target: torch.Tensor


def embed_rows(embedder, features, boxes, image_index, num_images):
    """Run a Box Embedder on boxes [R, 4] of images image_index [R] -> [R, D] in row order."""
    order = torch.argsort(image_index, stable=True)
    sorted_images = image_index[order]
    per_image = [boxes[order][sorted_images == i] for i in range(num_images)]
    out_sorted = embedder(features, per_image)
    out = out_sorted.new_empty(out_sorted.shape)
    out[order] = out_sorted
    return out


def _clip_rows(boxes, image_sizes, image_index):
    """Clip XYXY boxes [R, 4] to the (h, w) of their images."""
    sizes = torch.as_tensor(image_sizes, dtype=boxes.dtype, device=boxes.device)[image_index]
    x = boxes[:, 0::2].clamp(min=0).minimum(sizes[:, 1:2])
    y = boxes[:, 1::2].clamp(min=0).minimum(sizes[:, 0:1])
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


@META_ARCH_REGISTRY.register()
class SPNet(PersonSearchMetaArch, QueryConditionedSearch):
    """Swap Path Network (Sec. 3.1): backbone + FPN, Anchor Embedder, SP Block, Box Detector,
    Cascade Loop, re-id Box Embedder.

    Training input: list of dicts with "image" and "instances" (gt_boxes, gt_classes, gt_pids,
    gt_box_ids), or {VIEWS: [k such dicts]} (k-view mode). Returns
    {"loss_anchor", "loss_reg_s{t}", "loss_cls_s{t}", "loss_reid"}:
    L = L_reid + L_anc + sum_t (L_reg^(t) + L_cls^(t)).

    Inference (`forward` in eval mode): the contract of ps_plugin.structures (PersonSearchMetaArch);
    gallery inputs in OC mode only. Re-id embeddings of detections, queries and GT boxes all come
    from the re-id Box Embedder. In QC mode gallery detection depends on the query: SPNet
    implements QueryConditionedSearch (`encode_queries`, `detect_for_queries`;
    evaluation.query_centric_inference drives them), and `search(query_inputs, gallery_inputs)`
    runs both on given inputs.
    """

    @configurable
    def __init__(self, *, backbone, in_features, anchor_generator, anchor_embedder, reid_embedder, cascade,
                 logits_layer, anchor_matcher, box2box_transform, reid_loss, moco=None, mode="oc",
                 pixel_mean, pixel_std, label_mode="pid", focal_alpha=0.5, focal_gamma=1.0,
                 anchor_loss_norm="mean", cls_loss_norm="mean", stage0_cls_loss=True, num_sampled_anchors=2048,
                 positive_fraction=0.5, qc_pairs_per_batch=32, reid_iou_thresh=0.7, oc_topk_anchors=1000,
                 qc_topk_anchors=100, score_thresh=0.5, nms_thresh=0.5, detections_per_image=300,
                 load_replicate=True, load_shared_into_separate=True):
        super().__init__()
        self.backbone = backbone
        self.in_features = list(in_features)
        self.anchor_generator = anchor_generator
        self.anchor_embedder = anchor_embedder
        self.reid_embedder = reid_embedder
        self.cascade = cascade
        self.logits_layer = logits_layer
        self.anchor_matcher = anchor_matcher
        self.box2box_transform = box2box_transform
        self.reid_loss = reid_loss
        self.moco = moco
        self.mode = mode
        self.label_mode = label_mode
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.anchor_loss_norm, self.cls_loss_norm = anchor_loss_norm, cls_loss_norm
        self.stage0_cls_loss = stage0_cls_loss
        self.num_sampled_anchors = num_sampled_anchors
        self.positive_fraction = positive_fraction
        self.qc_pairs_per_batch = qc_pairs_per_batch
        self.reid_iou_thresh = reid_iou_thresh
        self.oc_topk_anchors, self.qc_topk_anchors = oc_topk_anchors, qc_topk_anchors
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_image = detections_per_image
        self.register_pixel_statistics(pixel_mean, pixel_std)
        install_stage_filling_hook(self, load_replicate, load_shared_into_separate)

    @classmethod
    def from_config(cls, cfg):
        node = cfg.PS.SPNET
        if node.SHARED_HEADS and node.REID_DIM != node.EMBED_DIM:
            raise ValueError(
                f"PS.SPNET.SHARED_HEADS=True needs REID_DIM == EMBED_DIM (x_q^reid = x_q^det); got "
                f"{node.REID_DIM} vs {node.EMBED_DIM}. Set SHARED_HEADS False for a larger re-id dimension."
            )
        backbone = build_backbone(cfg)
        shapes = [backbone.output_shape()[f] for f in node.IN_FEATURES]
        anchor_generator = build_anchor_generator(cfg, shapes)
        num_anchors = anchor_generator.num_cell_anchors
        if len(set(num_anchors)) != 1 or len({s.channels for s in shapes}) != 1:
            raise ValueError("SPNet's Anchor Embedder is shared across levels: every level of "
                             "PS.SPNET.IN_FEATURES needs the same channels and anchors per location")
        reid_embedder = build_box_embedder(cfg, backbone, node.REID_DIM, split_projection=True)
        reid = node.REID
        moco, reid_loss = None, None
        if reid.LOSS == "moco":
            moco = MomentumContrast(backbone, reid_embedder, reid.MOCO_QUEUE_SIZE, reid.MOCO_MOMENTUM,
                                    reid.MOCO_TEMPERATURE, reid.MOCO_CENTROID_INCLUDE_GT)
        elif reid.LOSS == "oim":
            ps_reid = cfg.PS.REID
            reid_loss = OIMLoss(resolve_num_pids(cfg), ps_reid.QUEUE_SIZE, node.REID_DIM, ps_reid.LUT_MOMENTUM,
                                ps_reid.SCALAR)
        else:
            raise ValueError(f"PS.SPNET.REID.LOSS={reid.LOSS!r}: use 'oim' or 'moco'")
        train, test = node.TRAIN, node.TEST
        return {
            "backbone": backbone,
            "in_features": node.IN_FEATURES,
            "anchor_generator": anchor_generator,
            "anchor_embedder": AnchorEmbedder(shapes[0].channels, num_anchors[0], node.EMBED_DIM),
            "reid_embedder": reid_embedder,
            "cascade": SPNetCascade.from_config(cfg, backbone),
            "logits_layer": build_logits_layer(cfg),
            "anchor_matcher": build_anchor_matcher(cfg),
            "box2box_transform": Box2BoxTransform(weights=tuple(train.BBOX_REG_WEIGHTS)),
            "reid_loss": reid_loss,
            "moco": moco,
            "mode": node.MODE,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "label_mode": train.LABELS,
            "focal_alpha": train.FOCAL_ALPHA,
            "focal_gamma": train.FOCAL_GAMMA,
            "anchor_loss_norm": train.ANCHOR_LOSS_NORM,
            "cls_loss_norm": train.CLS_LOSS_NORM,
            "stage0_cls_loss": train.STAGE0_CLS_LOSS,
            "num_sampled_anchors": train.NUM_SAMPLED_ANCHORS,
            "positive_fraction": train.POSITIVE_FRACTION,
            "qc_pairs_per_batch": train.QC_PAIRS_PER_BATCH,
            "reid_iou_thresh": train.REID_IOU_THRESH,
            "oc_topk_anchors": test.OC_TOPK_ANCHORS,
            "qc_topk_anchors": test.QC_TOPK_ANCHORS,
            "score_thresh": test.SCORE_THRESH,
            "nms_thresh": test.NMS_THRESH,
            "detections_per_image": test.DETECTIONS_PER_IMAGE,
            "load_replicate": node.LOAD_REPLICATE,
            "load_shared_into_separate": node.LOAD_SHARED_INTO_SEPARATE,
        }

    # ----------------------------------------------------------------- shared feature path
    def _anchor_path(self, features):
        """FPN features -> (anchors Boxes [A], anchor embeddings x_a^0 [B, A, d])."""
        maps = [features[f] for f in self.in_features]
        anchors = Boxes.cat(self.anchor_generator(maps))
        return anchors, self.anchor_embedder(maps)

    def stage_offsets(self, stage, anchor_embeddings, query_embeddings=None):
        return self.cascade.stages[stage].sp_block(anchor_embeddings, query_embeddings)

    # ----------------------------------------------------------------- training
    def losses(self, batched_inputs):
        """Loss dict for training inputs, k-view inputs expanded to their views (see class docstring)."""
        views = flatten_views(batched_inputs)
        if self.moco is not None:
            self.moco.update_momentum(self.backbone, self.reid_embedder)
        images = self.preprocess_image(views)
        features = self.backbone(images.tensor)
        anchors, anchor_embeddings = self._anchor_path(features)
        gts = [v["instances"].to(self.device) for v in views]
        labels = [lab.to(self.device) for lab in box_identity_labels(views, self.label_mode)]
        if self.mode == "oc":
            rows, anchor_loss = self._oc_rows(anchors, anchor_embeddings, gts)
            query_boxes = None
        else:
            query_boxes = torch.cat([g.gt_boxes.tensor for g in gts])
            query_images = torch.cat([torch.full((len(g),), i, device=self.device) for i, g in enumerate(gts)])
            query_embeddings = embed_rows(self.cascade.box_embedder(0, self.reid_embedder), features, query_boxes,
                                          query_images, len(gts))
            rows, anchor_loss = self._qc_rows(anchors, anchor_embeddings, gts, labels, query_embeddings)
            query_boxes = (query_boxes, query_images)
        losses = {"loss_anchor": anchor_loss}
        final_rows, final_boxes = self._cascade_losses(rows, features, images.image_sizes, gts, query_boxes, losses)
        losses["loss_reid"] = self._reid_loss(images, features, gts, labels, final_rows, final_boxes)
        return losses

    def _oc_rows(self, anchors, anchor_embeddings, gts):
        """OC: x_o = g_phi(x_a) - x_a on every anchor; focal loss on all; balanced sample per image."""
        per_image = max(self.num_sampled_anchors // len(gts), 1)
        all_logits, all_labels, rows = [], [], []
        for i, gt in enumerate(gts):
            offsets = self.stage_offsets(0, anchor_embeddings[i])
            matched, labels = match_boxes(self.anchor_matcher, gt.gt_boxes, anchors)
            all_logits.append(self.logits_layer(offsets))
            all_labels.append(labels)
            chosen = sample_balanced(labels, per_image, self.positive_fraction)
            rows.append(self._make_rows(anchors.tensor[chosen], offsets[chosen], labels[chosen], matched[chosen],
                                        image=i, query=-1, unit=i, pair_target=-1))
        loss = anchor_focal_loss(torch.cat(all_logits), torch.cat(all_labels), self.focal_alpha, self.focal_gamma,
                                 self.anchor_loss_norm)
        return _cat_rows(rows), loss

    def _qc_rows(self, anchors, anchor_embeddings, gts, labels, query_embeddings):
        """QC: sampled (query, image) pairs; x_o = x_q - x_a; the query's box in the image is the only GT."""
        pairs = sample_query_pairs([lab.cpu() for lab in labels], self.qc_pairs_per_batch)
        query_start = _view_offsets(gts, "cpu").tolist()
        per_pair = max(self.num_sampled_anchors // self.qc_pairs_per_batch, 1)
        all_logits, all_labels, rows = [], [], []
        for unit, pair in enumerate(pairs):
            query = query_start[pair.query_view] + pair.query_box
            gallery = pair.gallery_view
            norms = self.cascade.stages[0].sp_block.pairwise_offset_norms(
                anchor_embeddings[gallery], query_embeddings[query : query + 1])[0]
            target = gts[gallery].gt_boxes[[pair.target]] if pair.target >= 0 else gts[gallery].gt_boxes[:0]
            _, anchor_labels = match_boxes(self.anchor_matcher, target, anchors)
            all_logits.append(self.logits_layer.from_norm(norms))
            all_labels.append(anchor_labels)
            chosen = sample_balanced(anchor_labels, per_pair, self.positive_fraction)
            offsets = self.stage_offsets(0, anchor_embeddings[gallery][chosen], query_embeddings[query])
            matched = torch.full_like(chosen, pair.target)
            rows.append(self._make_rows(anchors.tensor[chosen], offsets, anchor_labels[chosen], matched,
                                        image=gallery, query=query, unit=unit, pair_target=pair.target))
        if not rows:
            zero = anchor_embeddings.sum() * 0.0
            return None, zero
        loss = anchor_focal_loss(torch.cat(all_logits), torch.cat(all_labels), self.focal_alpha, self.focal_gamma,
                                 self.anchor_loss_norm)
        return _cat_rows(rows), loss

    def _make_rows(self, boxes, offsets, labels, matched, image, query, unit, pair_target):
        def full(value):
            return torch.full((len(boxes),), value, dtype=torch.int64, device=boxes.device)

        return TrainRows(boxes, offsets, labels, full(image), torch.where(labels == 1, matched, full(-1)),
                         full(query), full(unit), full(pair_target))

    def _cascade_losses(self, rows, features, image_sizes, gts, query_boxes, losses):
        """Box Detector losses of stages 0..T (updates `losses`).

        Returns (the final stage's rows, their predicted boxes [R, 4]), or (None, None) without rows.
        """
        if rows is None:
            zero = sum(p.sum() * 0.0 for p in self.cascade.parameters())
            for t in range(self.cascade.num_stages):
                losses[f"loss_reg_s{t}"] = zero
                if t > 0 or self.stage0_cls_loss:
                    losses[f"loss_cls_s{t}"] = zero
            return None, None
        predicted = None
        for t, stage in enumerate(self.cascade.stages):
            if t > 0:
                rows = self._next_stage_rows(t, rows, predicted, features, image_sizes, gts, query_boxes)
            deltas = stage.box_detector(rows.offsets)
            predicted = self.box2box_transform.apply_deltas(deltas, rows.boxes)
            positive = rows.labels == 1
            targets = self._target_boxes(rows, gts)
            losses[f"loss_reg_s{t}"] = box_regression_loss(predicted[positive], targets[positive])
            if t > 0 or self.stage0_cls_loss:
                valid = rows.labels >= 0
                logits = self.logits_layer(rows.offsets[valid])
                losses[f"loss_cls_s{t}"] = box_class_loss(logits, rows.labels[valid], self.cls_loss_norm)
        return rows, predicted

    def _target_boxes(self, rows, gts):
        """GT box [R, 4] of every row (zeros for negatives)."""
        targets = rows.boxes.new_zeros(rows.boxes.shape)
        for i, gt in enumerate(gts):
            hit = (rows.image == i) & (rows.target_gt >= 0)
            targets[hit] = gt.gt_boxes.tensor[rows.target_gt[hit]]
        return targets

    def _next_stage_rows(self, stage, rows, predicted, features, image_sizes, gts, query_boxes):
        """Stage t inputs: detached, clipped stage t-1 boxes plus each unit's GT boxes, re-matched at
        IoU >= 0.5; x_a^(t) from stage t's Box Embedder; x_o^(t) from its SP Block."""
        boxes = _clip_rows(predicted.detach(), image_sizes, rows.image)
        parts = []
        for unit in torch.unique(rows.unit).tolist():
            in_unit = rows.unit == unit
            first = int(in_unit.nonzero()[0])
            image, query, target = int(rows.image[first]), int(rows.query[first]), int(rows.pair_target[first])
            gt_index = self._unit_gt_index(gts[image], query, target)
            unit_boxes = torch.cat([boxes[in_unit], gts[image].gt_boxes.tensor[gt_index]])
            matched, labels = match_boxes(self.anchor_matcher, gts[image].gt_boxes[gt_index], Boxes(unit_boxes))
            matched = gt_index[matched] if len(gt_index) else matched
            # offsets are placeholders until the stage's Box Embedder and SP Block run below
            parts.append(self._make_rows(unit_boxes, unit_boxes, labels, matched, image, query, unit, target))
        next_rows = _cat_rows(parts)
        embedder = self.cascade.box_embedder(stage, self.reid_embedder)
        anchor_embeddings = embed_rows(embedder, features, next_rows.boxes, next_rows.image, len(gts))
        query_embeddings = None
        if query_boxes is not None:
            all_queries = embed_rows(embedder, features, query_boxes[0], query_boxes[1], len(gts))
            query_embeddings = all_queries[next_rows.query]
        next_rows.offsets = self.stage_offsets(stage, anchor_embeddings, query_embeddings)
        return next_rows

    def _unit_gt_index(self, gt, query, target):
        """GT indices [M] of a unit: every GT box of the image (OC) or the QC pair's target (M <= 1)."""
        if query < 0:
            return torch.arange(len(gt), device=self.device)
        return torch.tensor([target] if target >= 0 else [], dtype=torch.int64, device=self.device)

    def _reid_loss(self, images, features, gts, labels, final_rows, final_boxes):
        """L_reid on GT boxes plus final-stage predicted boxes with IoU >= 0.7 to their GT box."""
        boxes = [g.gt_boxes.tensor for g in gts]
        image = [torch.full((len(g),), i, device=self.device) for i, g in enumerate(gts)]
        gt_index = [torch.arange(len(g), device=self.device) for g in gts]
        is_gt = [torch.ones(len(g), dtype=torch.bool, device=self.device) for g in gts]
        if final_boxes is not None:
            targets = self._target_boxes(final_rows, gts)
            iou = torch.diagonal(pairwise_iou(Boxes(final_boxes.detach()), Boxes(targets))) if len(targets) else targets[:, 0]
            keep = (final_rows.labels == 1) & (iou >= self.reid_iou_thresh)
            boxes.append(final_boxes.detach()[keep])
            image.append(final_rows.image[keep])
            gt_index.append(final_rows.target_gt[keep])
            is_gt.append(torch.zeros(int(keep.sum()), dtype=torch.bool, device=self.device))
        boxes, image, gt_index, is_gt = (torch.cat(x) for x in (boxes, image, gt_index, is_gt))
        embeddings = F.normalize(embed_rows(self.reid_embedder, features, boxes, image, len(gts)), dim=1)
        flat_index = _view_offsets(gts, self.device)[image] + gt_index
        if self.moco is None:
            return self.reid_loss(embeddings, torch.cat([g.gt_pids for g in gts])[flat_index])
        identity = torch.cat(labels)[flat_index]
        with torch.no_grad():
            momentum_features = self.moco.momentum_backbone(images.tensor)
            momentum = F.normalize(embed_rows(self.moco.momentum_embedder, momentum_features, boxes, image,
                                              len(gts)), dim=1)
        return self.moco(embeddings, momentum, identity, is_gt)

    # ----------------------------------------------------------------- inference
    def detect(self, images, features, inputs):
        """OC detection in each gallery image (input-image coordinates); QC mode needs a query."""
        if self.mode == "qc":
            record = inputs[0]
            raise ValueError(
                f"SPNet in QC mode cannot detect in gallery image {record.get('image_id', record.get('file_name'))!r} "
                "without a query: call model.search(query_inputs, gallery_inputs), or set PS.SPNET.MODE 'oc'."
            )
        anchors, anchor_embeddings = self._anchor_path(features)
        return [
            self._detect({k: v[i : i + 1] for k, v in features.items()}, anchors, anchor_embeddings[i], image_size)
            for i, image_size in enumerate(images.image_sizes)
        ]

    def embed_boxes(self, features, boxes):
        """x^reid of boxes [K_i, 4] of each image, one image at a time -> list of [K_i, D] L2-normalised."""
        return [
            F.normalize(self.reid_embedder({k: v[i : i + 1] for k, v in features.items()}, [image_boxes]), dim=1)
            for i, image_boxes in enumerate(boxes)
        ]

    def _detect(self, features, anchors, anchor_embeddings, image_size, query_embeddings=None):
        """Detections in one image (input-image coordinates, no embeddings). OC, or QC with
        query_embeddings = [x_q^(t) [d]]."""
        stage0 = self.cascade.stages[0].sp_block
        if query_embeddings is None:
            norms = stage0(anchor_embeddings).norm(dim=1)
            topk = self.oc_topk_anchors
        else:
            norms = stage0.pairwise_offset_norms(anchor_embeddings, query_embeddings[0][None])[0]
            topk = self.qc_topk_anchors
        chosen = norms.topk(min(topk, len(norms)), largest=False).indices
        boxes, embeddings = anchors.tensor[chosen], anchor_embeddings[chosen]
        for t, stage in enumerate(self.cascade.stages):
            if t > 0:
                embeddings = self.cascade.box_embedder(t, self.reid_embedder)(features, [boxes])
            query = None if query_embeddings is None else query_embeddings[t]
            offsets = stage.sp_block(embeddings, query)
            scores = torch.sigmoid(self.logits_layer(offsets))
            boxes = Boxes(self.box2box_transform.apply_deltas(stage.box_detector(offsets), boxes))
            boxes.clip(image_size)
            keep = (scores > self.score_thresh) & boxes.nonempty()
            boxes, scores = boxes.tensor[keep], scores[keep]
            keep = batched_nms(boxes, scores, torch.zeros_like(scores, dtype=torch.int64), self.nms_thresh)
            keep = keep[: self.detections_per_image]
            boxes, scores = boxes[keep], scores[keep]
        detections = Instances(image_size)
        detections.pred_boxes = Boxes(boxes)
        detections.scores = scores
        detections.pred_classes = torch.zeros(len(boxes), dtype=torch.int64, device=boxes.device)
        return detections

    @property
    def query_conditioned(self):
        """True in QC mode: gallery detections depend on the query (evaluate with a gallery pass per query)."""
        return self.mode == "qc"

    @torch.no_grad()
    def encode_queries(self, query_input):
        """One query input ("image", QUERY_BOXES [K, 4] resized-image XYXY) ->
        (x_q^reid [K, D] L2-normalised, x_q^det per cascade stage [K, T + 1, d])."""
        features = self.backbone(self.preprocess_image([query_input]).tensor)
        boxes = as_box_tensor(query_input[QUERY_BOXES], self.device)
        detection_queries = torch.stack([self.cascade.box_embedder(t, self.reid_embedder)(features, [boxes])
                                         for t in range(self.cascade.num_stages)], dim=1)
        return self.embed_boxes(features, [boxes])[0], detection_queries

    @torch.no_grad()
    def detect_for_queries(self, gallery_input, detection_queries):
        """One gallery input, x_q^det [K, T + 1, d] (encode_queries) -> ([K Instances in original
        coordinates, detections for query k], GT_EMBEDDINGS [M, D] of GT_BOXES_FOR_REID or None).
        In OC mode the detections ignore the queries (K copies of the same Instances)."""
        images = self.preprocess_image([gallery_input])
        features = self.backbone(images.tensor)
        anchors, anchor_embeddings = self._anchor_path(features)
        detections = []
        for query in detection_queries:
            found = self._detect(features, anchors, anchor_embeddings[0], images.image_sizes[0],
                                 None if self.mode == "oc" else query)
            self.attach_embeddings(features, [found])
            detections.append(to_original_size(found, gallery_input, images.image_sizes[0]))
        gt_boxes = gallery_input.get(GT_BOXES_FOR_REID)
        if gt_boxes is None:
            return detections, None
        return detections, self.embed_boxes(features, [as_box_tensor(gt_boxes, self.device)])[0]

    @torch.no_grad()
    def search(self, query_inputs, gallery_inputs):
        """QC (or OC) search: a gallery pass per query (Sec. 9.1 QC evaluation).

        query_inputs: dicts with "image" and QUERY_BOXES [K_i, 4]; gallery_inputs: dicts with
        "image" (and "height"/"width"). Returns {QUERY_EMBEDDINGS: [K, D] (all query boxes, in
        order), "detections": list over the K queries of lists over gallery inputs of Instances
        (original coordinates)}. In OC mode every query gets the same detections.
        """
        encoded = [self.encode_queries(record) for record in query_inputs]
        detection_queries = torch.cat([det for _, det in encoded])
        per_gallery = [self.detect_for_queries(record, detection_queries)[0] for record in gallery_inputs]
        detections = [[found[q] for found in per_gallery] for q in range(len(detection_queries))]
        return {QUERY_EMBEDDINGS: torch.cat([reid for reid, _ in encoded]), "detections": detections}


def _view_offsets(gts, device):
    """Start [V] of each view's GT boxes in the concatenation of all views' GT boxes."""
    sizes = torch.tensor([0] + [len(g) for g in gts[:-1]], device=device)
    return torch.cumsum(sizes, 0)


def _cat_rows(parts):
    return TrainRows(*(torch.cat([getattr(p, name) for p in parts]) for name in TrainRows.__dataclass_fields__))
