"""SPNet's training forward (Sec. 3.2-3.3): the rows the Box Detector is trained on in OC and QC mode,
the cascade's per-stage losses and the re-id loss; `SPNetTraining` is mixed into `SPNet`."""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from detectron2.structures import Boxes, pairwise_iou

from ps_plugin.modeling.common.views import flatten_views

from .box_detector import box_class_loss, box_regression_loss
from .matching import anchor_focal_loss, hard_qc_anchors, match_boxes, sample_balanced
from .pair_sampling import box_identity_labels, sample_query_pairs

__all__ = ["SPNetTraining", "TrainRows", "embed_rows"]


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


class SPNetTraining:
    """The training half of `SPNet` (`losses`), a mixin: it uses the model's backbone, anchor path
    (`_anchor_path`, `stage_offsets`), cascade, re-id Box Embedder, logits layer, matcher and losses
    set by SPNet.__init__, and its training options (num_sampled_anchors, qc_pairs_per_batch, ...).
    Loss keys and the total L = L_reid + L_anc + sum_t (L_reg^(t) + L_cls^(t)): SPNet's docstring.
    """

    def losses(self, batched_inputs):
        """Loss dict for training inputs, k-view inputs expanded to their views (keys: SPNet's docstring)."""
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
        """QC: sampled (query, image) pairs; x_o = x_q - x_a; the query's box in the image is the only GT.
        Box Detector rows per pair: the authors' highest-GIoU / hardest anchors, or a balanced random sample."""
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
            if self.qc_anchor_choice == "hard":
                chosen = hard_qc_anchors(anchors.tensor, target.tensor, norms.detach(), per_pair)
            else:
                chosen = sample_balanced(anchor_labels, per_pair, self.positive_fraction)
            offsets = self.stage_offsets(0, anchor_embeddings[gallery][chosen], query_embeddings[query])
            matched = torch.full_like(chosen, pair.target)
            rows.append(self._make_rows(anchors.tensor[chosen], offsets, anchor_labels[chosen], matched,
                                        image=gallery, query=query, unit=unit, pair_target=pair.target))
        if not rows:  # no GT box in this rank's batch: a zero loss, but still the all-rank normaliser
            all_logits = [anchor_embeddings.flatten()[:0]]
            all_labels = [torch.zeros(0, dtype=torch.int64, device=self.device)]
        loss = anchor_focal_loss(torch.cat(all_logits), torch.cat(all_labels), self.focal_alpha, self.focal_gamma,
                                 self.anchor_loss_norm)
        return (_cat_rows(rows) if rows else None), loss

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
            no_labels = torch.zeros(0, dtype=torch.int64, device=self.device)
            for t in range(self.cascade.num_stages):
                losses[f"loss_reg_s{t}"] = zero
                if t > 0 or self.stage0_cls_loss:  # joins the other ranks' all-reduce of the positives
                    losses[f"loss_cls_s{t}"] = zero + box_class_loss(zero.new_zeros(0), no_labels, self.cls_loss_norm)
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

def _view_offsets(gts, device):
    """Start [V] of each view's GT boxes in the concatenation of all views' GT boxes."""
    sizes = torch.tensor([0] + [len(g) for g in gts[:-1]], device=device)
    return torch.cumsum(sizes, 0)


def _cat_rows(parts):
    return TrainRows(*(torch.cat([getattr(p, name) for p in parts]) for name in TrainRows.__dataclass_fields__))
