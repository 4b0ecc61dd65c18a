"""PersonSearchRCNN: Faster R-CNN (backbone -> RPN -> ROI heads) with a re-id embedding branch."""
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.structures import Boxes

from ps_plugin.modeling.common import PersonSearchMetaArch, split_per_image
from ps_plugin.modeling.common.ignore_regions import drop_ignored_proposals, ignore_boxes_of
from ps_plugin.structures import IGNORE_BOXES

from .rpn import PersonSearchRPN


@META_ARCH_REGISTRY.register()
class PersonSearchRCNN(PersonSearchMetaArch, GeneralizedRCNN):
    """Person search with one network (OIM-style baseline; ROI heads must offer `embed_boxes`).

    Training input: list of {"image": [C, H, W] in INPUT.FORMAT, "instances": Instances(gt_boxes,
    gt_classes, gt_pids int64 with -1 = unlabeled)} -> dict of losses (RPN, box, "loss_oim").

    Inference: the contract of ps_plugin.structures (PersonSearchMetaArch). Gallery embeddings are
    computed on the final (regressed) boxes; with NAE the detection `scores` are the norm-derived
    confidences of those embeddings.
    """

    def losses(self, batched_inputs):
        """GeneralizedRCNN's training forward (less its visualisation), with the inputs' ignore regions:
        RPN, box and re-id losses (ROI heads)."""
        images = self.preprocess_image(batched_inputs)
        targets = [x["instances"].to(self.device) for x in batched_inputs]
        features = self.backbone(images.tensor)
        proposals, proposal_losses = self.propose(images, features, targets, batched_inputs)
        _, detector_losses = self.roi_heads(images, features, proposals, targets)
        return {**detector_losses, **proposal_losses}

    def propose(self, images, features, targets, inputs):
        """Training RPN -> (proposals, RPN losses), honouring the inputs' IGNORE_BOXES: anchors and proposals
        inside a region (IoA > PS.DATA.IGNORE_IOA_THRESH) and matched to no person are neither positives
        nor negatives (modeling/common/ignore_regions.py). Without regions: the proposal generator's call."""
        regions = ignore_boxes_of(inputs, self.device)
        if regions is None:
            return self.proposal_generator(images, features, targets)
        if not isinstance(self.proposal_generator, PersonSearchRPN):
            raise ValueError(
                f"Training inputs carry ignore regions ({IGNORE_BOXES}) but MODEL.PROPOSAL_GENERATOR.NAME is "
                f"{type(self.proposal_generator).__name__!r}: set it to 'PersonSearchRPN' (Base-PersonSearchRCNN.yaml "
                "does), or PS.DATA.IGNORE_REGIONS False to train on them as background."
            )
        proposals, losses = self.proposal_generator(images, features, targets, ignore_boxes=regions)
        threshold = self.proposal_generator.ignore_ioa_thresh
        return drop_ignored_proposals(proposals, targets, regions, self.roi_heads.proposal_matcher, threshold), losses

    def detect(self, images, features, inputs):
        """RPN -> ROI heads -> Instances with pred_embeddings [N_i, D] of the final boxes (and NAE
        `scores` from their norms), input-image coordinates."""
        proposals, _ = self.proposal_generator(images, features, None)
        detections, _ = self.roi_heads(images, features, proposals, None)
        embeddings, nae_scores = self.roi_heads.embed_boxes(features, [d.pred_boxes for d in detections])
        sizes = [len(d) for d in detections]
        for det, det_embeddings in zip(detections, split_per_image(embeddings, sizes)):
            det.pred_embeddings = det_embeddings
        if nae_scores is not None:
            for det, det_scores in zip(detections, split_per_image(nae_scores, sizes)):
                det.scores = det_scores
        return detections

    def embed_boxes(self, features, boxes):
        """The ROI heads' re-id branch on boxes [K_i, 4] of each image -> list of [K_i, D]."""
        embeddings, _ = self.roi_heads.embed_boxes(features, [Boxes(b) for b in boxes])
        return split_per_image(embeddings, [len(b) for b in boxes])
