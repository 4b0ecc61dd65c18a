"""`SPNet`: the Swap Path Network meta-architecture (Sec. 3, Fig. 3), QC or OC mode: its modules and
detection path. The training forward is in training.py, query-conditioned search in query_conditioned.py."""
import logging

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import batched_nms
from detectron2.modeling import META_ARCH_REGISTRY, build_anchor_generator, build_backbone
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.structures import Boxes, Instances

from ps_plugin.modeling.common import OIMLoss, PersonSearchMetaArch, resolve_num_pids

from .cascade import SPNetCascade
from .checkpoint import install_stage_filling_hook
from .embedders import AnchorEmbedder, build_box_embedder
from .fixed_norm import anchor_bias_value, build_logits_layer
from .matching import QC_ANCHOR_CHOICES, build_anchor_matcher
from .moco import MomentumContrast
from .query_conditioned import SPNetQueryConditioned
from .training import SPNetTraining

__all__ = ["SPNet"]

logger = logging.getLogger(__name__)


def warn_random_init(cfg):
    """A loud warning when the backbone will start from random init without PS.SPNET.RANDOM_INIT."""
    if cfg.PS.BACKBONE.WEIGHTS or cfg.MODEL.WEIGHTS or cfg.PS.SPNET.RANDOM_INIT:
        return
    logger.warning(
        "\n" + "!" * 100 + "\nSPNet: neither PS.BACKBONE.WEIGHTS nor MODEL.WEIGHTS is set, so the backbone "
        f"({cfg.MODEL.BACKBONE.NAME}, PS.BACKBONE.NAME {cfg.PS.BACKBONE.NAME}) and the Box Embedder heads start "
        "from RANDOM init; every SPNet result starts from ImageNet weights "
        "(docs/SPNET.md, 'Reproducing SPNet-L'). Give a local converted state dict "
        "(tools/convert_pretrained.py), or set PS.SPNET.RANDOM_INIT True if random init is meant.\n"
        + "!" * 100)


@META_ARCH_REGISTRY.register()
class SPNet(SPNetTraining, SPNetQueryConditioned, PersonSearchMetaArch):
    """Swap Path Network (Sec. 3.1): backbone + FPN, Anchor Embedder, SP Block, Box Detector,
    Cascade Loop, re-id Box Embedder.

    Training input: list of dicts with "image" and "instances" (gt_boxes, gt_classes, gt_pids,
    gt_box_ids), or {VIEWS: [k such dicts]} (k-view mode). Returns
    {"loss_anchor", "loss_reg_s{t}", "loss_cls_s{t}", "loss_reid"}:
    L = L_reid + L_anc + sum_t (L_reg^(t) + L_cls^(t)).

    Inference (`forward` in eval mode): the contract of ps_plugin.structures (PersonSearchMetaArch);
    gallery inputs in OC mode only. Re-id embeddings of detections, queries and GT boxes all come
    from the re-id Box Embedder. In QC mode gallery detection depends on the query: SPNet
    implements QueryConditionedSearch (query_conditioned.py; `search(query_inputs, gallery_inputs)`
    runs it on given inputs).
    """

    @configurable
    def __init__(self, *, backbone, in_features, anchor_generator, anchor_embedder, reid_embedder, cascade,
                 logits_layer, anchor_matcher, box2box_transform, reid_loss, moco=None, mode="oc",
                 pixel_mean, pixel_std, label_mode="pid", focal_alpha=0.5, focal_gamma=1.0,
                 anchor_loss_norm="num_pos", cls_loss_norm="num_pos", stage0_cls_loss=True, num_sampled_anchors=2048,
                 positive_fraction=0.5, qc_pairs_per_batch=32, qc_anchor_choice="hard", reid_iou_thresh=0.7, oc_topk_anchors=1000,
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
        self.mode, self.label_mode = mode, label_mode
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.anchor_loss_norm, self.cls_loss_norm = anchor_loss_norm, cls_loss_norm
        self.stage0_cls_loss = stage0_cls_loss
        self.num_sampled_anchors, self.positive_fraction = num_sampled_anchors, positive_fraction
        self.qc_pairs_per_batch, self.reid_iou_thresh = qc_pairs_per_batch, reid_iou_thresh
        if qc_anchor_choice not in QC_ANCHOR_CHOICES:
            raise ValueError(f"PS.SPNET.TRAIN.QC_ANCHOR_CHOICE={qc_anchor_choice!r}: use one of {QC_ANCHOR_CHOICES}")
        self.qc_anchor_choice = qc_anchor_choice
        self.oc_topk_anchors, self.qc_topk_anchors = oc_topk_anchors, qc_topk_anchors
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_image = detections_per_image
        self.register_pixel_statistics(pixel_mean, pixel_std)
        install_stage_filling_hook(self, load_replicate, load_shared_into_separate)

    @classmethod
    def from_config(cls, cfg):
        node = cfg.PS.SPNET
        reid_dim = cfg.PS.REID.EMBED_DIM
        if node.SHARED_HEADS and reid_dim != node.EMBED_DIM:
            raise ValueError(
                f"PS.SPNET.SHARED_HEADS=True needs PS.REID.EMBED_DIM == PS.SPNET.EMBED_DIM (x_q^reid = x_q^det); "
                f"got {reid_dim} vs {node.EMBED_DIM}. Set SHARED_HEADS False for a larger re-id dimension."
            )
        warn_random_init(cfg)
        backbone = build_backbone(cfg)
        shapes = [backbone.output_shape()[f] for f in node.IN_FEATURES]
        anchor_generator = build_anchor_generator(cfg, shapes)
        num_anchors = anchor_generator.num_cell_anchors
        if len(set(num_anchors)) != 1 or len({s.channels for s in shapes}) != 1:
            raise ValueError("SPNet's Anchor Embedder is shared across levels: every level of "
                             "PS.SPNET.IN_FEATURES needs the same channels and anchors per location")
        reid_embedder = build_box_embedder(cfg, backbone, reid_dim, split_projection=True)
        reid = node.REID
        moco, reid_loss = None, None
        if reid.LOSS == "moco":
            moco = MomentumContrast(backbone, reid_embedder, reid.MOCO_QUEUE_SIZE, reid.MOCO_MOMENTUM,
                                    reid.MOCO_TEMPERATURE, reid.MOCO_CENTROID_INCLUDE_GT)
        elif reid.LOSS == "oim":
            ps_reid = cfg.PS.REID
            reid_loss = OIMLoss(resolve_num_pids(cfg), ps_reid.QUEUE_SIZE, reid_dim, ps_reid.LUT_MOMENTUM,
                                ps_reid.SCALAR)
        else:
            raise ValueError(f"PS.SPNET.REID.LOSS={reid.LOSS!r}: use 'oim' or 'moco'")
        train, test = node.TRAIN, node.TEST
        logits_layer = build_logits_layer(cfg)
        anchor_bias = anchor_bias_value(node.ANCHOR_BIAS_INIT, node.ANCHOR_PRIOR_PROB, logits_layer)
        return {
            "backbone": backbone,
            "in_features": node.IN_FEATURES,
            "anchor_generator": anchor_generator,
            "anchor_embedder": AnchorEmbedder(shapes[0].channels, num_anchors[0], node.EMBED_DIM, anchor_bias),
            "reid_embedder": reid_embedder,
            "cascade": SPNetCascade.from_config(cfg, backbone),
            "logits_layer": logits_layer,
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
            "qc_anchor_choice": train.QC_ANCHOR_CHOICE,
            "reid_iou_thresh": train.REID_IOU_THRESH,
            "oc_topk_anchors": test.OC_TOPK_ANCHORS,
            "qc_topk_anchors": test.QC_TOPK_ANCHORS,
            "score_thresh": test.SCORE_THRESH,
            "nms_thresh": test.NMS_THRESH,
            "detections_per_image": test.DETECTIONS_PER_IMAGE,
            "load_replicate": node.LOAD_REPLICATE,
            "load_shared_into_separate": node.LOAD_SHARED_INTO_SEPARATE,
        }

    def _anchor_path(self, features):
        """FPN features -> (anchors Boxes [A], anchor embeddings x_a^0 [B, A, d])."""
        maps = [features[f] for f in self.in_features]
        anchors = Boxes.cat(self.anchor_generator(maps))
        return anchors, self.anchor_embedder(maps)

    def stage_offsets(self, stage, anchor_embeddings, query_embeddings=None):
        """x_o of cascade stage `stage`: x_a [N, d] (and x_q [N, d] in QC) -> [N, d] (SwapPathBlock)."""
        return self.cascade.stages[stage].sp_block(anchor_embeddings, query_embeddings)

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
