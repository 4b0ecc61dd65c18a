"""`TargetPseudoLabelHook`: the per-epoch stage 1 of LAID (Fig. 2), and the source proxies it starts from.

Before training (fresh run): the proxy memory gets one row per labelled source identity, the mean
embedding of its ground-truth boxes under the initial model (DSCA).

Before the first step of every target epoch from PS.LAID.TARGET_REID_START on (epoch = target images
seen // target training images): inference on every target training image (eval mode, test-time
resize; each rank a share, gathered), CAIM per image against the previous epoch's tracks, hard
negatives, clustering into pseudo identities, the memory's target rows replaced, and the target
records given the pseudo boxes and rows as annotations; the trainer then restarts its stream at the
current iteration over the new records (the stream's order does not depend on annotations).

The hook's state (last epoch, every image's tracks and pseudo annotations) is saved in the trainer
checkpoint, so a resumed run trains on the same pseudo labels and continues CAIM from the same tracks.
"""
import logging

import torch
from detectron2.data import build_detection_test_loader
from detectron2.engine import HookBase
from detectron2.utils import comm

from ps_plugin.data.identities import SOURCE, TARGET
from ps_plugin.data.mapper import PersonSearchDatasetMapper
from ps_plugin.data.samplers import integer_weights, rng_state, set_rng_state
from ps_plugin.modeling.laid.caim import CostAwareInstanceMatching, TrackCache
from ps_plugin.modeling.laid.pseudo_labels import (
    ImageDetections,
    cluster_tracks,
    hard_negatives,
    pseudo_annotations,
    pseudo_identities,
)
from ps_plugin.structures import GT_EMBEDDINGS
from ps_plugin.utils.distributed import all_gather_tensor, broadcast_tensor

__all__ = ["TargetPseudoLabelHook"]

logger = logging.getLogger(__name__)


def _unwrapped(model):
    return getattr(model, "module", model)


class TargetPseudoLabelHook(HookBase):
    """Stage 1 of LAID for a PersonSearchTrainer whose model is LAID (see the module docstring)."""

    def __init__(self, cfg, records):
        """records: the trainer's `train_records` (source and target, tagged by "domain"); the target
        records in it are replaced in place by their pseudo-labelled copies."""
        node = cfg.PS.LAID
        self.records = records
        self.target_index = [i for i, r in enumerate(records) if r.get("domain") == TARGET]
        self.source_index = [i for i, r in enumerate(records) if r.get("domain") == SOURCE]
        if not self.target_index:
            raise ValueError("LAID needs target images: tag one DATASETS.TRAIN set 'target' in PS.DATA.TRAIN_DOMAINS.")
        weights = integer_weights(cfg.PS.DATA.DOMAIN_RATIOS)
        self.target_per_batch = cfg.SOLVER.IMS_PER_BATCH * weights[1] // sum(weights)
        self.start_epoch = node.TARGET_REID_START
        self.caim = CostAwareInstanceMatching(cfg)
        self.negative = node.HARD_NEGATIVE
        self.cluster = {"eps": node.CLUSTER.EPS, "min_samples": node.CLUSTER.MIN_SAMPLES,
                        "k1": node.CLUSTER.K1, "k2": node.CLUSTER.K2}
        self.mapper = PersonSearchDatasetMapper(cfg, is_train=False, gt_map=True)
        self.num_workers = cfg.DATALOADER.NUM_WORKERS
        self.embed_dim = cfg.PS.REID.EMBED_DIM
        self.epoch = -1
        self.caches = [TrackCache.empty(self.embed_dim) for _ in self.target_index]

    # ---- training loop ------------------------------------------------------------------------
    def before_train(self):
        if self.trainer.start_iter == 0:
            self.init_source_proxies(_unwrapped(self.trainer.model))

    def before_step(self):
        epoch = self.trainer.iter * self.target_per_batch // len(self.target_index)
        if epoch < self.start_epoch or epoch <= self.epoch:
            return
        statistics = self.label_target(_unwrapped(self.trainer.model))
        self.epoch = epoch
        logger.info(f"LAID stage 1, target epoch {epoch}: {statistics}")
        self.trainer.storage.put_scalars(**{f"laid/{k}": v for k, v in statistics.items()}, smoothing_hint=False)
        self.trainer.restart_train_stream(self.trainer.iter)

    # ---- source proxies -----------------------------------------------------------------------
    def init_source_proxies(self, model):
        """Memory <- one row per identity-table row: the mean embedding of its ground-truth boxes."""
        rows, embeddings = [], []
        for record, output in self._infer(model, [self.records[i] for i in self.source_index]):
            pids = torch.tensor([a["person_id"] for a in record["annotations"]], dtype=torch.long)
            labelled = pids >= 0
            rows.append(pids[labelled])
            embeddings.append(output[GT_EMBEDDINGS].cpu()[labelled])
        rows = all_gather_tensor(torch.cat(rows).to(model.device))
        embeddings = all_gather_tensor(torch.cat(embeddings).to(model.device))
        if len(rows) == 0:
            raise ValueError("LAID: the source training sets hold no labelled person (person_id >= 0); the proxy "
                             "memory starts from the source identities.")
        num_rows = int(rows.max()) + 1
        sums = embeddings.new_zeros(num_rows, embeddings.shape[1]).index_add_(0, rows, embeddings)
        model.memory.set_source(sums)
        logger.info(f"LAID: {num_rows} source identity proxies from {len(rows)} labelled boxes")

    # ---- stage 1 ------------------------------------------------------------------------------
    def label_target(self, model):
        """Detect, CAIM, hard negatives, cluster; set the memory's target rows and the target records."""
        detections = self.detect_targets(model)
        caches, negatives = [], []
        for cache, detection in zip(self.caches, detections):
            cache, _ = self.caim.update(cache, detection.boxes, detection.features, detection.scores)
            caches.append(cache)
            if self.negative.ENABLED:
                negatives.append(hard_negatives(detection, cache.boxes, self.negative.MIN_SCORE,
                                                self.caim.score_thresh, self.negative.IOU))
        labels = self._broadcast_labels(caches)
        negatives = torch.cat(negatives) if negatives else torch.zeros(0, self.embed_dim)
        model.memory.set_target(labels.centroids.to(model.device), negatives.to(model.device))
        first_row = int(model.memory.target_row(torch.zeros((), dtype=torch.long)))
        self.caches = caches
        for index, cache, image_labels in zip(self.target_index, caches, labels.labels):
            self.records[index] = {**self.records[index], "annotations": pseudo_annotations(cache, image_labels, first_row)}
        return {"tracks": sum(len(c) for c in caches), "clusters": labels.num_clusters,
                "outliers": labels.num_outliers, "hard_negatives": len(negatives),
                "images_without_detection": sum(len(d.boxes) == 0 for d in detections)}

    def _broadcast_labels(self, caches):
        """cluster_tracks on rank 0 (the clustering is one process's), its labels sent to every rank."""
        labels = torch.zeros(sum(len(c) for c in caches), dtype=torch.long)
        num_clusters = torch.zeros((), dtype=torch.long)
        if comm.is_main_process():
            computed, clusters = cluster_tracks(caches, **self.cluster)
            labels.copy_(computed)
            num_clusters.fill_(clusters)
        device = self._device()
        labels, num_clusters = broadcast_tensor(labels.to(device)), broadcast_tensor(num_clusters.to(device))
        return pseudo_identities(caches, labels.cpu(), int(num_clusters))

    def detect_targets(self, model):
        """Every target training image's detections (original-image coordinates, CPU), in target order:
        those stage 1 can use (score >= the lower of CAIM's candidate threshold and the hard-negative
        floor), and the top one, which an image keeps in any case."""
        floor = min(self.caim.candidate_thresh, self.negative.MIN_SCORE if self.negative.ENABLED else 1.0)
        local = {}
        for record, output in self._infer(model, [{**self.records[i], "annotations": [], "target_position": k}
                                                 for k, i in enumerate(self.target_index)]):
            d = output["instances"].to("cpu")
            keep = d.scores >= floor
            if len(d):
                keep[d.scores.argmax()] = True
            local[record["target_position"]] = ImageDetections(d.pred_boxes.tensor[keep], d.scores[keep],
                                                               d.pred_embeddings[keep])
        gathered = {}
        for part in comm.all_gather(local):
            gathered.update(part)
        return [gathered[k] for k in range(len(self.target_index))]

    @torch.no_grad()
    def _infer(self, model, records):
        """(record, model output) for this rank's share of `records`, eval mode; RNG states kept."""
        saved_rng, was_training = rng_state(), model.training
        model.eval()
        loader = build_detection_test_loader(records, mapper=self.mapper, num_workers=self.num_workers)
        outputs = []
        for batch in loader:
            outputs += list(zip(batch, model(batch)))
        model.train(was_training)
        set_rng_state(saved_rng)
        return outputs

    def _device(self):
        return _unwrapped(self.trainer.model).device

    # ---- checkpoint ---------------------------------------------------------------------------
    def state_dict(self):
        return {
            "epoch": self.epoch,
            "caches": [{"boxes": c.boxes, "features": c.features, "track_ids": c.track_ids, "next_id": c.next_id}
                       for c in self.caches],
            "annotations": [self.records[i]["annotations"] for i in self.target_index],
        }

    def load_state_dict(self, state):
        if len(state["caches"]) != len(self.target_index):
            raise ValueError(
                f"The checkpoint's LAID state covers {len(state['caches'])} target images, the target set of this run "
                f"has {len(self.target_index)}: resume with the target data it was trained on, or start a new OUTPUT_DIR."
            )
        self.epoch = int(state["epoch"])
        self.caches = [TrackCache(c["boxes"], c["features"], c["track_ids"], int(c["next_id"])) for c in state["caches"]]
        for index, annotations in zip(self.target_index, state["annotations"]):
            self.records[index] = {**self.records[index], "annotations": annotations}
