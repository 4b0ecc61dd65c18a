"""PersonSearchRCNN: Faster R-CNN (backbone -> RPN -> ROI heads) with a re-id embedding branch."""
import torch
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, ImageList

from ps_plugin.structures import GT_BOXES_FOR_REID, GT_EMBEDDINGS, QUERY_BOXES, QUERY_EMBEDDINGS


def _select(images, features, indices):
    """The sub-batch `indices` of an ImageList and its feature maps."""
    if len(indices) == len(images):
        return images, features
    index = torch.as_tensor(indices, device=images.tensor.device)
    sub_images = ImageList(images.tensor[index], [images.image_sizes[i] for i in indices])
    return sub_images, {name: f[index] for name, f in features.items()}


def _as_boxes(boxes, device):
    return Boxes(torch.as_tensor(boxes, dtype=torch.float32, device=device).reshape(-1, 4))


@META_ARCH_REGISTRY.register()
class PersonSearchRCNN(GeneralizedRCNN):
    """Person search with one network (OIM-style baseline; ROI heads must offer `embed_boxes`).

    Training input: list of {"image": [C, H, W] in INPUT.FORMAT, "instances": Instances(gt_boxes,
    gt_classes, gt_pids int64 with -1 = unlabeled)} -> dict of losses (RPN, box, "loss_oim").

    Inference input, one dict per image, any mix of (keys: ps_plugin.structures):
      - gallery (no QUERY_BOXES): -> {"instances": Instances(pred_boxes, scores, pred_classes,
        pred_embeddings [N, D])} in the original image size ("height"/"width"), and with
        GT_BOXES_FOR_REID [M, 4] (input-image coordinates) also GT_EMBEDDINGS [M, D];
      - query (QUERY_BOXES [K, 4], input-image coordinates) -> {QUERY_EMBEDDINGS: [K, D]}.
    Embeddings are L2-normalised and computed on the final (regressed) boxes. With NAE the
    detection `scores` are the norm-derived confidences of those embeddings.
    """

    def inference(self, batched_inputs, do_postprocess=True):
        assert not self.training
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        outputs = [{} for _ in batched_inputs]
        query = [i for i, x in enumerate(batched_inputs) if QUERY_BOXES in x]
        gallery = [i for i, x in enumerate(batched_inputs) if QUERY_BOXES not in x]
        if query:
            self._embed_queries([batched_inputs[i] for i in query], *_select(images, features, query), [outputs[i] for i in query])
        if gallery:
            self._search_gallery(
                [batched_inputs[i] for i in gallery], *_select(images, features, gallery), [outputs[i] for i in gallery], do_postprocess
            )
        return outputs

    def _embed_queries(self, inputs, images, features, outputs):
        boxes = [_as_boxes(x[QUERY_BOXES], self.device) for x in inputs]
        embeddings, _ = self.roi_heads.embed_boxes(features, boxes)
        for output, query_embeddings in zip(outputs, embeddings.split([len(b) for b in boxes])):
            output[QUERY_EMBEDDINGS] = query_embeddings

    def _search_gallery(self, inputs, images, features, outputs, do_postprocess):
        proposals, _ = self.proposal_generator(images, features, None)
        detections, _ = self.roi_heads(images, features, proposals, None)
        self._attach_embeddings(features, detections)
        if any(GT_BOXES_FOR_REID in x for x in inputs):
            gt_boxes = [_as_boxes(x.get(GT_BOXES_FOR_REID, []), self.device) for x in inputs]
            gt_embeddings, _ = self.roi_heads.embed_boxes(features, gt_boxes)
            for x, output, embeddings in zip(inputs, outputs, gt_embeddings.split([len(b) for b in gt_boxes])):
                if GT_BOXES_FOR_REID in x:
                    output[GT_EMBEDDINGS] = embeddings
        for x, det, image_size, output in zip(inputs, detections, images.image_sizes, outputs):
            if do_postprocess:
                det = detector_postprocess(det, x.get("height", image_size[0]), x.get("width", image_size[1]))
            output["instances"] = det

    def _attach_embeddings(self, features, detections):
        """Set `pred_embeddings` [N_i, D] (and NAE `scores`) on each image's detections."""
        embeddings, nae_scores = self.roi_heads.embed_boxes(features, [d.pred_boxes for d in detections])
        sizes = [len(d) for d in detections]
        for det, det_embeddings in zip(detections, embeddings.split(sizes)):
            det.pred_embeddings = det_embeddings
        if nae_scores is not None:
            for det, det_scores in zip(detections, nae_scores.split(sizes)):
                det.scores = det_scores
