"""SPNet's query-conditioned search (supplementary Sec. 9.1): the QueryConditionedSearch protocol of
ps_plugin.structures, implemented by `SPNetQueryConditioned`, a mixin of `SPNet`."""
import torch

from ps_plugin.modeling.common.meta_arch_base import as_box_tensor, to_original_size
from ps_plugin.structures import GT_BOXES_FOR_REID, QUERY_BOXES, QUERY_EMBEDDINGS, QueryConditionedSearch

__all__ = ["SPNetQueryConditioned"]


class SPNetQueryConditioned(QueryConditionedSearch):
    """QueryConditionedSearch for SPNet: queries are encoded by the cascade's Box Embedders, and each
    gallery image is searched per query by `SPNet._detect` (QC) or once for all (OC). Uses the
    model's backbone, `preprocess_image`, `_anchor_path`, `_detect`, `attach_embeddings` and
    `embed_boxes`; evaluation.query_centric_inference drives `encode_queries` and
    `detect_for_queries`, and `search` runs both on given inputs.
    """

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
