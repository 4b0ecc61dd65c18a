"""PersonSearchEvaluator: Detectron2 DatasetEvaluator for the gallery + query test pass.

Inputs may arrive in any order and on any rank. Contract with the model (ps_plugin.structures;
records: docs/DATA_RECORDS.md):
  * gallery input (no "query_keys" / "query_index"): outputs["instances"] with pred_boxes (original
    image coordinates), scores, pred_embeddings [N, D]; optionally outputs[GT_EMBEDDINGS] [M, D]
    for the record's M ground-truth boxes, in annotation order (the model computes them when the
    input carries GT_BOXES_FOR_REID); they give the GT mAP (re-id with a perfect detector).
  * query input ("query_keys" from build_person_search_test_dicts, or "dataset_name" +
    "query_index"): outputs[QUERY_EMBEDDINGS] [K, D], row 0 = the query box.
Query-conditioned detectors (SPNet in QC mode) give each query its own gallery detections through
`process_conditioned` (query_centric.py drives it); search metrics are then computed per query and
detection AP / recall are not reported (there is no query-independent detection).
"""
import json
import logging
import os
from collections import OrderedDict

import numpy as np
from detectron2.config import configurable
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage

from ps_plugin.structures import GT_EMBEDDINGS, QUERY_EMBEDDINGS

from .detection_metrics import evaluate_detection
from .gallery_results import GalleryResults
from .inference_dicts import query_key
from .plots import plot_cmc, plot_map_vs_gallery_size
from .protocols import evaluate_conditioned_search, evaluate_search
from .results_io import save_results
from .search_inputs import GalleryTruth, query_from_record

logger = logging.getLogger(__name__)


def _numpy(tensor):
    return tensor.detach().cpu().numpy()


def _detections_dict(instances):
    """Instances (pred_boxes, scores, pred_embeddings) -> {"boxes" [N, 4], "scores" [N], "embeddings" [N, D]}."""
    instances = instances.to("cpu")
    return {
        "boxes": _numpy(instances.pred_boxes.tensor),
        "scores": _numpy(instances.scores),
        "embeddings": _numpy(instances.pred_embeddings),
    }


class PersonSearchEvaluator(DatasetEvaluator):
    """Search mAP / CMC per query dataset, detection AP / recall, optional GT mAP.

    evaluate() returns {"person_search": {"<query dataset>/mAP": ..., "/top1", "/top5", "/top10",
    "/gt_mAP", "det/AP", "det/recall"}} (fractions), writes person_search_metrics.json, cmc.png and
    (CUHK-SYSU) map_vs_gallery_size.png into output_dir, and the results file when save_results.
    """

    @configurable
    def __init__(
        self,
        gallery_dataset_name,
        query_dataset_names=None,
        *,
        det_thresh=0.5,
        det_eval_thresh=0.01,
        det_labeled_only=False,
        duplicate_rule="reference",
        cross_camera=False,
        cbgm=False,
        cbgm_k1=10,
        cbgm_k2=3,
        gt_map=True,
        save_results=False,
        output_dir=None,
        distributed=True,
    ):
        """
        Args:
            gallery_dataset_name: registered gallery dataset.
            query_dataset_names: its query datasets; None = the gallery metadata's `query_datasets`.
            det_thresh .. cbgm_k2: protocol options (protocols.evaluate_search, evaluate_detection).
            gt_map: report GT mAP when the model returns gt_embeddings.
            save_results: write search_results.npz (tools/evaluate_results.py input) to output_dir.
            output_dir: where metrics JSON, plots and the results file go; None writes nothing.
            distributed: gather from every rank; evaluate on the main process.
        """
        self.gallery_name = gallery_dataset_name
        if query_dataset_names is None:
            query_dataset_names = MetadataCatalog.get(gallery_dataset_name).get("query_datasets", [])
        self.query_names = list(query_dataset_names)
        self.search_options = dict(
            det_thresh=det_thresh, duplicate_rule=duplicate_rule, cross_camera=cross_camera,
            cbgm=cbgm, cbgm_k1=cbgm_k1, cbgm_k2=cbgm_k2,
        )
        self.det_eval_thresh, self.det_labeled_only = det_eval_thresh, det_labeled_only
        self.gt_map, self.save_results = gt_map, save_results
        self.output_dir, self.distributed = output_dir, distributed
        self.reset()

    @classmethod
    def from_config(cls, cfg, gallery_dataset_name, query_dataset_names=None, output_dir=None, distributed=True):
        ev = cfg.PS.EVAL
        if query_dataset_names is None:
            sizes = set(ev.GALLERY_SIZES)
            query_dataset_names = [
                name for name in MetadataCatalog.get(gallery_dataset_name).get("query_datasets", [])
                if MetadataCatalog.get(name).get("gallery_size", None) in sizes | {None}
            ]
        return {
            "gallery_dataset_name": gallery_dataset_name,
            "query_dataset_names": query_dataset_names,
            "det_thresh": ev.DET_THRESH,
            "det_eval_thresh": ev.DET_EVAL_THRESH,
            "det_labeled_only": ev.DET_LABELED_ONLY,
            "duplicate_rule": ev.DUPLICATE_RULE,
            "cross_camera": ev.PRW_CROSS_CAMERA,
            "cbgm": ev.CBGM,
            "cbgm_k1": ev.CBGM_K1,
            "cbgm_k2": ev.CBGM_K2,
            "gt_map": ev.GT_MAP,
            "save_results": ev.SAVE_RESULTS,
            "output_dir": output_dir,
            "distributed": distributed,
        }

    def reset(self):
        self._gallery = {}
        self._gt_embeddings = {}
        self._query_embeddings = {}
        self._conditioned = {}

    def process(self, inputs, outputs):
        for item, output in zip(inputs, outputs):
            if "query_keys" in item or "query_index" in item:
                keys = item.get("query_keys") or [(item["dataset_name"], item["query_index"])]
                embedding = _numpy(output[QUERY_EMBEDDINGS])[0]
                for key in keys:
                    self._query_embeddings[tuple(key)] = embedding
                continue
            self._gallery[item["image_id"]] = _detections_dict(output["instances"])
            if GT_EMBEDDINGS in output:
                self._gt_embeddings[item["image_id"]] = _numpy(output[GT_EMBEDDINGS])

    def process_conditioned(self, gallery_input, detections, gt_embeddings=None):
        """One gallery input's detections for each query of a query-conditioned detector.

        Args:
            gallery_input: the gallery record ("image_id").
            detections: {(query dataset name, query_index): Instances (pred_boxes in original
                coordinates, scores, pred_embeddings [N, D])}, the queries whose gallery holds the image.
            gt_embeddings: optional [M, D] for the record's ground-truth boxes (GT mAP).
        """
        for key, instances in detections.items():
            self._conditioned.setdefault(tuple(key), {})[gallery_input["image_id"]] = _detections_dict(instances)
        if gt_embeddings is not None:
            self._gt_embeddings[gallery_input["image_id"]] = _numpy(gt_embeddings)

    def _gathered(self):
        """(gallery, gt_embeddings, query_embeddings, conditioned) merged over ranks; None off the main process."""
        parts = (self._gallery, self._gt_embeddings, self._query_embeddings, self._conditioned)
        if not self.distributed:
            return parts
        comm.synchronize()
        gathered = comm.gather(parts, dst=0)
        if not comm.is_main_process():
            return None
        merged = ({}, {}, {}, {})
        for rank_parts in gathered:
            for target, part in zip(merged[:3], rank_parts[:3]):
                target.update(part)
            for key, per_image in rank_parts[3].items():
                merged[3].setdefault(key, {}).update(per_image)
        return merged

    def evaluate(self):
        gathered = self._gathered()
        if gathered is None:
            return {}
        gallery, gt_embeddings, query_embeddings, conditioned = gathered
        gallery_records = DatasetCatalog.get(self.gallery_name)
        truth = GalleryTruth.from_records(gallery_records)
        metrics = OrderedDict()
        if conditioned:
            results = None
        else:
            results = GalleryResults.from_dict(gallery, source=f"{self.gallery_name} model output")
            detection = evaluate_detection(results, truth, self.det_eval_thresh, labeled_only=self.det_labeled_only)
            metrics.update({f"det/{k}": v for k, v in detection.items()})
        gt_results = self._gt_results(gallery_records, gt_embeddings) if self.gt_map else None
        curves, saved_queries = {}, {}
        for name in self.query_names:
            records = DatasetCatalog.get(name)
            queries = [query_from_record(r, self._query_embedding(query_embeddings, name, r)) for r in records]
            if conditioned:
                per_query = [self._conditioned_results(conditioned, name, r) for r in records]
                search = evaluate_conditioned_search(per_query, queries, truth, **self.search_options)
            else:
                search = evaluate_search(results, queries, truth, **self.search_options)
            metrics.update({f"{name}/{k}": v for k, v in search.summary().items()})
            curves[name] = search.cmc()
            if gt_results is not None:
                options = {**self.search_options, "det_thresh": -np.inf, "cbgm": False}
                metrics[f"{name}/gt_mAP"] = evaluate_search(gt_results, queries, truth, **options).summary()["mAP"]
            saved_queries[name] = [{"image": q.image_id, "box": q.box, "embedding": q.embedding} for q in queries]
        self._log_to_storage(metrics)
        self._write_outputs(metrics, curves, gallery, saved_queries)
        return OrderedDict(person_search=metrics)

    def _query_embedding(self, query_embeddings, name, record):
        key = (name, record["query_index"])
        if key not in query_embeddings:
            raise KeyError(
                f"{name}: no embedding for query {record['query_index']} (image '{record['image_id']}', box "
                f"{query_key(record)[1]}). Feed every query of build_person_search_test_dicts to the model."
            )
        return query_embeddings[key]

    def _conditioned_results(self, conditioned, name, record):
        key = (name, record["query_index"])
        if key not in conditioned:
            raise KeyError(
                f"{name}: no gallery detections for query {record['query_index']} (image '{record['image_id']}'). "
                "A query-conditioned model must run every query over its gallery (query_centric_inference)."
            )
        return GalleryResults.from_dict(conditioned[key], source=f"{self.gallery_name} detections for {name} query {key[1]}")

    def _gt_results(self, gallery_records, gt_embeddings):
        """Results of a perfect detector (GT boxes, score 1), or None when the model gave no gt_embeddings."""
        if len(gt_embeddings) < len(gallery_records):
            return None
        gallery = {}
        for record in gallery_records:
            boxes = np.array([a["bbox"] for a in record["annotations"]], dtype=np.float64).reshape(-1, 4)
            gallery[record["image_id"]] = {"boxes": boxes, "scores": np.ones(len(boxes)), "embeddings": gt_embeddings[record["image_id"]]}
        return GalleryResults.from_dict(gallery, source=f"{self.gallery_name} gt_embeddings")

    @staticmethod
    def _log_to_storage(metrics):
        try:
            storage = get_event_storage()
        except AssertionError:
            return
        storage.put_scalars(**{f"person_search/{k}": v for k, v in metrics.items()}, smoothing_hint=False)

    def _write_outputs(self, metrics, curves, gallery, saved_queries):
        if not self.output_dir:
            return
        os.makedirs(self.output_dir, exist_ok=True)
        with open(os.path.join(self.output_dir, "person_search_metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2)
        if curves:
            plot_cmc(curves, os.path.join(self.output_dir, "cmc.png"))
        sizes = [
            (MetadataCatalog.get(name).gallery_size, metrics[f"{name}/mAP"])
            for name in self.query_names if MetadataCatalog.get(name).get("gallery_size", -1) > 0
        ]
        if len(sizes) > 1:
            plot_map_vs_gallery_size(sizes, os.path.join(self.output_dir, "map_vs_gallery_size.png"))
        if self.save_results and saved_queries and gallery:
            first = next(iter(saved_queries.values()))
            save_results(os.path.join(self.output_dir, "search_results.npz"), gallery, first, saved_queries)
        logger.info(f"Person search metrics written to {self.output_dir}")
