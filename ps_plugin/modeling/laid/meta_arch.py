"""LAID (AAAI'26) on the baseline's Faster R-CNN: domain-adaptive person search from a labelled source
domain and an unlabelled target domain (docs/LAID.md).

Training batches hold source and target images (data/samplers.py domain_pair_stream; the record's
"dataset_id" is 0 for source, 1 for target). Each domain runs its own forward, as DSCA does:

- source: RPN and box losses, re-id on the foreground proposals (L_cross against the proxy memory,
  eq. 4; L_intra, eq. 5-8; the NAE confidence loss), TSA (eq. 10) and the domain classifiers;
- target, before its first pseudo labels: only the domain classifiers (its boxes are hidden);
- target, with pseudo labels (the stage-1 hook, ps_plugin.engine.domain_adaptation): the same
  losses on the pseudo boxes, detection x TARGET_DET_WEIGHT and L_cross x TARGET_REID_WEIGHT, the
  target margin in L_intra. Target loss names end in "_t".

Inference is the baseline's (embeddings of the final boxes), scored by the box classifier or, with
PS.LAID.DETECTION_SCORE "nae", by the NAE confidence.
"""
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY

from ps_plugin.data.identities import SOURCE, TARGET
from ps_plugin.modeling.baseline import PersonSearchRCNN, proposal_pids
from ps_plugin.modeling.common.domain_adversarial import DomainAlignmentModule
from ps_plugin.modeling.common.reid_head import DomainSpecificBatchNorm1d

from .config import check_laid_config
from .dscl import IntraImageLoss
from .proxy_memory import ProxyMemory
from .rpn import DifferentiableObjectnessRPN
from .tsa import TaskSensitivityAlignment, index_proposals

__all__ = ["LAID", "DOMAIN_IDS"]

# The record key the domain-pair stream sets, and its values.
DOMAIN_KEY = "dataset_id"
DOMAIN_IDS = {SOURCE: 0, TARGET: 1}


@META_ARCH_REGISTRY.register()
class LAID(PersonSearchRCNN):
    """Faster R-CNN + NAE re-id head + proxy memory + DA-Faster domain classifiers, trained with DSCL
    and TSA. Buffers of `memory` (ProxyMemory) carry the proxies through checkpoints."""

    @configurable
    def __init__(self, *, memory, intra_loss, tsa, domain_alignment, da_weights, target_det_weight,
                 target_reid_weight, nae_loss_weight, detection_score="box", **kwargs):
        super().__init__(**kwargs)
        self.detection_score = detection_score
        self.memory = memory
        self.intra_loss = intra_loss
        self.tsa = tsa
        self.domain_alignment = domain_alignment
        self.da_weights = da_weights
        self.target_det_weight = target_det_weight
        self.target_reid_weight = target_reid_weight
        self.nae_loss_weight = nae_loss_weight

    @classmethod
    def from_config(cls, cfg):
        check_laid_config(cfg)
        if not cfg.PS.REID.NAE:
            raise ValueError("LAID needs the NAE re-id head (its confidence is TSA's Q and the pseudo boxes' score): "
                             "set PS.REID.NAE True.")
        ret = super().from_config(cfg)
        node = cfg.PS.LAID
        cls._check_tsa_detector(cfg, ret["proposal_generator"])
        if node.DSBN:
            cls._use_domain_specific_bn(ret["roi_heads"].reid_branch.head)
        ret.update(
            memory=ProxyMemory(cfg.PS.REID.EMBED_DIM, node.MEMORY_MOMENTUM, node.DSCL.CROSS_TEMPERATURE),
            intra_loss=IntraImageLoss(cfg),
            tsa=TaskSensitivityAlignment(cfg),
            domain_alignment=cls._build_domain_alignment(cfg, ret) if node.DA.ENABLED else None,
            da_weights={"img": node.DA.IMAGE_WEIGHT, "ins": node.DA.INSTANCE_WEIGHT, "cst": node.DA.CONSISTENCY_WEIGHT},
            target_det_weight=node.TARGET_DET_WEIGHT,
            target_reid_weight=node.TARGET_REID_WEIGHT,
            nae_loss_weight=cfg.PS.REID.NAE_LOSS_WEIGHT,
            detection_score=node.DETECTION_SCORE,
        )
        return ret

    @staticmethod
    def _check_tsa_detector(cfg, proposal_generator):
        """TSA on the RPN needs proposals whose objectness logits carry gradient."""
        tsa = cfg.PS.LAID.TSA
        if tsa.DETECTOR == "rpn" and tsa.MODE != "off" and not isinstance(proposal_generator, DifferentiableObjectnessRPN):
            raise ValueError(
                "PS.LAID.TSA.DETECTOR 'rpn' aligns the RPN objectness of the sampled proposals, which needs their logits "
                f"with gradient, but MODEL.PROPOSAL_GENERATOR.NAME is {type(proposal_generator).__name__!r}: set it to "
                "'DifferentiableObjectnessRPN' (configs/Base-LAID.yaml does), or PS.LAID.TSA.DETECTOR 'box'."
            )

    @staticmethod
    def _use_domain_specific_bn(head):
        if head.bn is None:
            raise ValueError("PS.LAID.DSBN needs the re-id head's BatchNorm: set PS.REID.HEAD_BN True.")
        head.bn = DomainSpecificBatchNorm1d(head.bn.num_features)

    @contextmanager
    def _domain_batch_norm(self, domain):
        """With DSBN (PS.LAID.DSBN), the re-id head's BatchNorm of `domain` for the block, the target's after."""
        bn = self.roi_heads.reid_branch.head.bn
        if not isinstance(bn, DomainSpecificBatchNorm1d):
            yield
            return
        bn.domain = domain
        try:
            yield
        finally:
            bn.domain = TARGET

    @staticmethod
    def _build_domain_alignment(cfg, parts):
        """Image-level classifier on the ROI heads' input map, instance-level on the re-id head's input."""
        in_feature = cfg.MODEL.ROI_HEADS.IN_FEATURES[0]
        channels = parts["backbone"].output_shape()[in_feature].channels
        instance_dim = parts["roi_heads"].reid_branch.head.projection.in_features
        return DomainAlignmentModule(channels, instance_dim, num_domains=2, grl_weight=cfg.PS.LAID.DA.GRL_WEIGHT)

    def detect(self, images, features, inputs):
        """The baseline's detections; with DETECTION_SCORE "box" their scores are the box classifier's
        (the embeddings are then attached by the base, from the same final boxes)."""
        if self.detection_score == "nae":
            return super().detect(images, features, inputs)
        proposals, _ = self.proposal_generator(images, features, None)
        detections, _ = self.roi_heads(images, features, proposals, None)
        return detections

    @property
    def has_target_labels(self):
        """True once stage 1 has given the target images pseudo identities (memory target rows)."""
        return int(self.memory.num_target) > 0

    def losses(self, batched_inputs):
        if any(DOMAIN_KEY not in x for x in batched_inputs):
            raise ValueError("LAID trains on the source + target stream: tag DATASETS.TRAIN with PS.DATA.TRAIN_DOMAINS "
                             "(e.g. ('source', 'target')) so every training record carries its domain.")
        losses = {}
        for domain, domain_id in DOMAIN_IDS.items():
            inputs = [x for x in batched_inputs if x[DOMAIN_KEY] == domain_id]
            if inputs:
                suffix = "_t" if domain == TARGET else ""
                losses.update({f"{name}{suffix}": value for name, value in self.domain_losses(inputs, domain).items()})
        return losses

    def domain_losses(self, inputs, domain):
        """The losses of one domain's images (all of one domain) -> {name: scalar}."""
        images = self.preprocess_image(inputs)
        features = self.backbone(images.tensor)
        targets = [x["instances"].to(self.device) for x in inputs]
        proposals, rpn_losses = self.propose(images, features, targets, inputs)
        index_proposals(proposals, targets)
        sampled = self.roi_heads.label_and_sample_proposals(proposals, targets)
        predictions, reid_features = self.roi_heads.box_predictions_and_reid_features(
            features, [p.proposal_boxes for p in sampled]
        )
        losses = {}
        if domain == SOURCE or self.has_target_labels:
            det_weight = self.target_det_weight if domain == TARGET else 1.0
            detection = {**rpn_losses, **self.roi_heads.box_predictor.losses(predictions, sampled)}
            losses.update({name: det_weight * value for name, value in detection.items()})
            detector_probs = self.tsa.detector_probs(proposals, sampled, predictions[0])
            with self._domain_batch_norm(domain):
                losses.update(self.reid_losses(sampled, detector_probs, reid_features, domain))
        if self.domain_alignment is not None:
            losses.update(self.domain_alignment_losses(features, reid_features, sampled, domain))
        return losses

    def reid_losses(self, sampled, detector_probs, reid_features, domain):
        """L_cross, L_intra, NAE and TSA on the sampled proposals of one domain's images; detector_probs:
        TSA's P and the sampled proposals it covers (TaskSensitivityAlignment.detector_probs)."""
        embeddings, norms = self.roi_heads.reid_branch.head(reid_features)
        confidence = self.roi_heads.reid_branch.head.detection_scores(norms)  # NAE: Q of eq. 10
        rows, foreground = proposal_pids(sampled, self.roi_heads.num_classes)
        foreground_prob, aligned = detector_probs  # P of eq. 10
        per_image = [len(p) for p in sampled]
        fg_boxes = [p.proposal_boxes.tensor[fg] for p, fg in zip(sampled, foreground.split(per_image))]
        fg_embeddings = [e[fg] for e, fg in zip(embeddings.split(per_image), foreground.split(per_image))]
        reid_weight = self.target_reid_weight if domain == TARGET else 1.0
        losses = {
            "loss_cross": reid_weight * self.memory.loss(embeddings[foreground], rows[foreground]),
            "loss_intra": self.intra_loss(fg_boxes, fg_embeddings, domain),
            "loss_nae_det": self.nae_loss_weight * F.binary_cross_entropy(confidence, foreground.float())
            * (self.target_det_weight if domain == TARGET else 1.0),
            "loss_tsa": self.tsa(foreground_prob, confidence[aligned]),
        }
        self.memory.update(embeddings[foreground], rows[foreground])
        return losses

    def domain_alignment_losses(self, features, reid_features, sampled, domain):
        """DA-Faster's image, instance and consistency terms for one domain's images (domain id 0 / 1)."""
        image_map = features[self.roi_heads.in_features[0]]  # the map the ROI heads pool from
        instances = reid_features.mean(dim=(2, 3)) if reid_features.dim() == 4 else reid_features
        image_domains = torch.full((len(image_map),), DOMAIN_IDS[domain], dtype=torch.long, device=image_map.device)
        image_index = torch.repeat_interleave(
            torch.arange(len(sampled), device=image_map.device),
            torch.tensor([len(p) for p in sampled], device=image_map.device),
        )
        terms = self.domain_alignment(image_map, image_domains, instances, image_index)
        return {f"loss_da_{name}": self.da_weights[name] * value for name, value in terms.items()}
