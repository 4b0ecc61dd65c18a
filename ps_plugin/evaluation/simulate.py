"""Simulated search results for tests and benchmarks: jittered ground-truth boxes, false positives,
and embeddings made of an identity prototype plus Gaussian noise."""
import numpy as np


class ResultSimulator:
    """Turns ground truth into a plausible results file.

    Args:
        dim: embedding dimension D.
        noise: std of the per-detection Gaussian noise added to the unit identity prototype
            (per dimension, scaled by 1/sqrt(D)); 0 = perfect embeddings.
        jitter: box jitter, as a fraction of box width / height.
        false_positives: mean number of extra random detections per image (Poisson).
        seed: numpy Generator seed.
    """

    def __init__(self, dim=256, noise=0.5, jitter=0.05, false_positives=1.0, seed=0):
        self.dim, self.noise, self.jitter, self.false_positives = dim, noise, jitter, false_positives
        self.rng = np.random.default_rng(seed)
        self._prototypes = {}

    def prototype(self, person_id):
        """Unit vector [D] of a labeled identity; each call with -1 draws a fresh (unlabeled) one."""
        if person_id < 0:
            return self._unit(self.rng.standard_normal(self.dim))
        if person_id not in self._prototypes:
            self._prototypes[person_id] = self._unit(self.rng.standard_normal(self.dim))
        return self._prototypes[person_id]

    def embed(self, person_ids):
        """Noisy embeddings [N, D] for identities [N]."""
        base = np.stack([self.prototype(int(p)) for p in person_ids]) if len(person_ids) else np.zeros((0, self.dim))
        noisy = base + self.noise / np.sqrt(self.dim) * self.rng.standard_normal(base.shape)
        return noisy.astype(np.float32)

    def detections(self, gt_boxes, person_ids, width=1000.0, height=800.0):
        """One image's {"boxes" [N, 4], "scores" [N], "embeddings" [N, D]}: jittered GT + false positives."""
        gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
        size = np.repeat(gt_boxes[:, 2:] - gt_boxes[:, :2], 2, axis=0).reshape(-1, 4)
        boxes = gt_boxes + self.jitter * size * self.rng.uniform(-1, 1, gt_boxes.shape)
        num_fp = self.rng.poisson(self.false_positives)
        fp_xy = self.rng.uniform(0, [width * 0.8, height * 0.6], (num_fp, 2))
        fp_wh = self.rng.uniform([20, 50], [120, 300], (num_fp, 2))
        boxes = np.concatenate([boxes, np.concatenate([fp_xy, fp_xy + fp_wh], axis=1)])
        scores = np.concatenate([self.rng.uniform(0.6, 1.0, len(gt_boxes)), self.rng.uniform(0.0, 1.0, num_fp)])
        ids = np.concatenate([np.asarray(person_ids, dtype=np.int64).reshape(-1), -np.ones(num_fp, dtype=np.int64)])
        return {"boxes": boxes.astype(np.float32), "scores": scores.astype(np.float32), "embeddings": self.embed(ids)}

    @staticmethod
    def _unit(vector):
        return vector / np.linalg.norm(vector)


def known_people(query_records, gallery_records=()):
    """{image_id: (boxes [M, 4], person_ids [M])}: every person the protocol or the gallery truth
    places in an image (explicit-gallery boxes carry the query's person_id), one box per identity."""
    people = {}

    def add(image_id, box, person_id):
        boxes = people.setdefault(image_id, {})
        key = person_id if person_id >= 0 else ("unlabeled", len(boxes))
        boxes.setdefault(key, (np.asarray(box, dtype=np.float64), person_id))

    for record in gallery_records:
        people.setdefault(record["image_id"], {})
        for annotation in record["annotations"]:
            add(record["image_id"], annotation["bbox"], annotation["person_id"])
    for record in query_records:
        person_id = record["annotations"][0]["person_id"]
        add(record["image_id"], record["annotations"][0]["bbox"], person_id)
        gallery = record.get("gallery")
        if gallery is not None:
            for image_id, box in zip(gallery["image_ids"], np.asarray(gallery["boxes"])):
                people.setdefault(image_id, {})
                if not np.isnan(box).any():
                    add(image_id, box, person_id)
    return {
        image_id: (
            np.array([b for b, _ in found.values()]).reshape(-1, 4),
            np.array([p for _, p in found.values()], dtype=np.int64),
        )
        for image_id, found in people.items()
    }


def simulate_results(simulator, query_records, gallery_records=()):
    """Results file content {"gallery": ..., "queries": [...]} (tools/evaluate_results.py format)
    for a protocol, from its query records and (generic protocols) the gallery records."""
    people = known_people(query_records, gallery_records)
    gallery = {image_id: simulator.detections(boxes, pids) for image_id, (boxes, pids) in people.items()}
    query_embeddings = simulator.embed([r["annotations"][0]["person_id"] for r in query_records])
    queries = [
        {"image": r["image_id"], "box": np.asarray(r["annotations"][0]["bbox"], dtype=np.float32), "embedding": e}
        for r, e in zip(query_records, query_embeddings)
    ]
    return {"gallery": gallery, "queries": queries}
