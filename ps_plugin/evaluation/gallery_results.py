"""Model output on the gallery images, packed into flat arrays for vectorised protocols."""
import numpy as np


def l2_normalize(embeddings):
    """Rows scaled to unit length (zero rows stay zero). [N, D] -> float32 [N, D]."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(embeddings, axis=-1, keepdims=True)
    return embeddings / np.maximum(norms, 1e-12)


def _check_finite(values, owners, what, source):
    """Raise naming the first owner (image / query) whose `values` [N, ...] hold NaN or inf."""
    if len(values) == 0:
        return
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{source}: {what} of '{owners[int(np.flatnonzero(bad)[0])]}' contain NaN or inf "
            f"({int(bad.sum())} row(s) in all). Fix the model output or drop those detections."
        )


def box_array(boxes, owner, source):
    """boxes -> float64 [N, 4] x1y1x2y2; anything but N rows of 4 (or nothing) raises ValueError naming
    `owner` (the image) and `source`, with a hint when the array looks transposed ([4, N])."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim == 1 and boxes.shape[0] == 4:
        return boxes.reshape(1, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        transposed = boxes.ndim == 2 and boxes.shape[0] == 4
        hint = " It looks transposed: store one row per box ([N, 4], boxes.T)." if transposed else ""
        raise ValueError(f"{source}: image '{owner}' has boxes of shape {list(boxes.shape)}; expected [N, 4] "
                         f"(x1, y1, x2, y2 per detection).{hint}")
    return boxes


class GalleryResults:
    """Detections of every gallery image, concatenated.

    Attributes:
        image_ids: list[str] (G), `index`: image_id -> position.
        boxes: float64 [N, 4] x1y1x2y2 in original image coordinates.
        scores: float64 [N].
        embeddings: float32 [N, D], L2-normalised.
        det_image: int64 [N], the image of each detection; detections of one image are contiguous.
        image_offsets: int64 [G + 1]; image g owns rows image_offsets[g]:image_offsets[g + 1].
    """

    def __init__(self, image_ids, boxes, scores, embeddings, counts):
        self.image_ids = list(image_ids)
        self.index = {name: i for i, name in enumerate(self.image_ids)}
        self.boxes = boxes
        self.scores = scores
        self.embeddings = embeddings
        self.counts = np.asarray(counts, dtype=np.int64)
        self.image_offsets = np.concatenate([[0], np.cumsum(self.counts)])
        self.det_image = np.repeat(np.arange(len(self.image_ids)), self.counts)

    @property
    def dim(self):
        return self.embeddings.shape[1]

    @classmethod
    def from_dict(cls, gallery, source="gallery results", normalize=True):
        """Build from {image_id: {"boxes": [N, 4], "scores": [N], "embeddings": [N, D]}}.

        Raises ValueError naming the image when boxes are not [N, 4], lengths disagree, embedding dims
        differ, or values are NaN. An image with N = 0 detections is valid. normalize: L2-normalise
        the embeddings.
        """
        names, boxes, scores, embeddings, counts = [], [], [], [], []
        dim = None
        for name, det in gallery.items():
            b = box_array(det["boxes"], name, source)
            s = np.asarray(det["scores"], dtype=np.float64).reshape(-1)
            e = np.asarray(det["embeddings"], dtype=np.float32)
            e = e.reshape(len(e), -1) if e.size else e.reshape(0, dim or 0)
            if not len(b) == len(s) == len(e):
                raise ValueError(
                    f"{source}: image '{name}' has {len(b)} boxes, {len(s)} scores and {len(e)} "
                    "embeddings; each detection needs one of each."
                )
            if len(e):
                if dim is not None and e.shape[1] != dim:
                    raise ValueError(
                        f"{source}: image '{name}' has {e.shape[1]}-d embeddings, earlier images "
                        f"{dim}-d. Every embedding must have the same dimension."
                    )
                dim = e.shape[1]
            names.append(str(name))
            boxes.append(b)
            scores.append(s)
            embeddings.append(e)
            counts.append(len(b))
        dim = dim or 0
        embeddings = [e.reshape(len(e), dim) for e in embeddings]
        return cls.from_arrays(
            names, counts, _concat(boxes, (0, 4)), _concat(scores, (0,)), _concat(embeddings, (0, dim)), source, normalize
        )

    @classmethod
    def from_arrays(cls, image_ids, counts, boxes, scores, embeddings, source="gallery results", normalize=True):
        """Build from flat arrays: image_ids (G), counts int [G], boxes [N, 4], scores [N],
        embeddings [N, D] with N = sum(counts), rows of an image contiguous in image order.

        Raises ValueError naming `source` when the shapes disagree, and the image when values are
        NaN or inf. normalize: L2-normalise the embeddings.
        """
        counts = np.asarray(counts, dtype=np.int64).reshape(-1)
        boxes = np.asarray(boxes, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
        embeddings = np.asarray(embeddings, dtype=np.float32)
        total = int(counts.sum())
        if boxes.shape != (total, 4) or scores.shape != (total,) or embeddings.ndim != 2 or len(embeddings) != total:
            raise ValueError(
                f"{source}: boxes {list(boxes.shape)}, scores {list(scores.shape)}, embeddings "
                f"{list(embeddings.shape)}; the {len(counts)} images hold N = {total} detections, so expected "
                "[N, 4] (x1y1x2y2, one row per detection), [N] and [N, D]."
            )
        if len(counts) != len(image_ids):
            raise ValueError(f"{source}: {len(image_ids)} image ids but {len(counts)} detection counts.")
        packed = cls([str(name) for name in image_ids], boxes, scores, embeddings, counts)
        owners = [packed.image_ids[g] for g in packed.det_image]
        _check_finite(packed.embeddings, owners, "embeddings", source)
        _check_finite(packed.boxes, owners, "boxes", source)
        _check_finite(packed.scores, owners, "scores", source)
        if normalize:
            packed.embeddings = l2_normalize(packed.embeddings)
        return packed

    def select(self, image_ids, min_score=-np.inf, source="gallery results"):
        """Results restricted to `image_ids` (in that order) and detections with score >= min_score.

        Raises KeyError naming the first image missing from the results.
        """
        missing = [name for name in image_ids if name not in self.index]
        if missing:
            raise KeyError(
                f"{source}: gallery image '{missing[0]}' is missing from the results "
                f"({len(missing)} missing in all). Run the model on every gallery image of the protocol."
            )
        images = np.array([self.index[name] for name in image_ids], dtype=np.int64)
        rows = expand_ranges(self.image_offsets[images], self.counts[images])
        keep = self.scores[rows] >= min_score
        counts = np.bincount(np.repeat(np.arange(len(images)), self.counts[images])[keep], minlength=len(images))
        rows = rows[keep]
        return GalleryResults(list(image_ids), self.boxes[rows], self.scores[rows], self.embeddings[rows], counts)


def _concat(arrays, empty_shape):
    return np.concatenate(arrays) if arrays else np.zeros(empty_shape)


def expand_ranges(starts, counts):
    """Concatenated aranges: [starts[i], starts[i] + counts[i]) for every i -> int64 [sum(counts)]."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    first = np.cumsum(counts) - counts
    return np.repeat(np.asarray(starts, dtype=np.int64) - first, counts) + np.arange(total)
