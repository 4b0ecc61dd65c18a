"""`GalleryIndex`: detections (boxes, scores, embeddings) of indexed gallery images, saved to a folder.

On disk (`index_dir`): `manifest.json` (format version, embedding dim, one entry per indexed image:
key, source path, frame number or null, height, width, first row, number of rows) and
`detections.npz` (boxes float32 [R, 4] XYXY in original image coordinates, scores float32 [R],
embeddings float32 [R, D]); the rows of entry i are rows[first : first + count].
"""
import json
import os

import numpy as np

__all__ = ["GalleryIndex", "image_key"]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "detections.npz"


def image_key(source, frame=None):
    """Key of an indexed image: its absolute path, or "<absolute video path>#<frame number>"."""
    source = os.path.abspath(str(source))
    return source if frame is None else f"{source}#{int(frame)}"


class GalleryIndex:
    """Append-only store of per-image detections; `len(index)` = number of indexed images."""

    def __init__(self, embed_dim=None):
        self.embed_dim = embed_dim
        self.entries = []
        self._keys = set()
        self._chunks = []
        self._num_rows = 0

    def __len__(self):
        return len(self.entries)

    def __contains__(self, key):
        return key in self._keys

    @property
    def num_detections(self):
        return self._num_rows

    def add(self, source, detections, height, width, frame=None):
        """Add one image's detections (see PersonSearchPredictor.detect); returns False if already indexed."""
        key = image_key(source, frame)
        if key in self._keys:
            return False
        boxes = np.asarray(detections["boxes"], dtype=np.float32).reshape(-1, 4)
        embeddings = np.asarray(detections["embeddings"], dtype=np.float32)
        if embeddings.ndim != 2 or len(embeddings) != len(boxes):
            raise ValueError(f"Image '{key}': embeddings of shape {embeddings.shape} for {len(boxes)} boxes; "
                             "expected [N, D].")
        if self.embed_dim is None:
            self.embed_dim = int(embeddings.shape[1])
        elif embeddings.shape[1] != self.embed_dim:
            raise ValueError(
                f"Image '{key}': embedding dim {embeddings.shape[1]} differs from the index's {self.embed_dim}. "
                "An index holds one model's embeddings: use a new --index folder for another model."
            )
        scores = np.asarray(detections["scores"], dtype=np.float32).reshape(-1)
        self.entries.append({"key": key, "source": os.path.abspath(str(source)), "frame": frame,
                             "height": int(height), "width": int(width), "first": self._num_rows, "count": len(boxes)})
        self._keys.add(key)
        self._chunks.append((boxes, scores, embeddings))
        self._num_rows += len(boxes)
        return True

    def arrays(self):
        """(boxes float32 [R, 4], scores [R], embeddings [R, D], entry index of each row int64 [R])."""
        empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, self.embed_dim or 0), np.float32))
        boxes, scores, embeddings = (np.concatenate([e] + [c[i] for c in self._chunks]) for i, e in enumerate(empty))
        self._chunks = [(boxes, scores, embeddings)]
        counts = [entry["count"] for entry in self.entries]
        return boxes, scores, embeddings, np.repeat(np.arange(len(counts)), counts)

    def save(self, index_dir):
        """Write manifest.json and detections.npz into `index_dir` (created if needed)."""
        os.makedirs(index_dir, exist_ok=True)
        boxes, scores, embeddings, _ = self.arrays()
        arrays_tmp = os.path.join(index_dir, ARRAYS + ".tmp.npz")
        np.savez(arrays_tmp, boxes=boxes, scores=scores, embeddings=embeddings)
        os.replace(arrays_tmp, os.path.join(index_dir, ARRAYS))
        manifest = {"format_version": FORMAT_VERSION, "embed_dim": self.embed_dim, "entries": self.entries}
        manifest_tmp = os.path.join(index_dir, MANIFEST + ".tmp")
        with open(manifest_tmp, "w") as f:
            json.dump(manifest, f, indent=1)
        os.replace(manifest_tmp, os.path.join(index_dir, MANIFEST))

    @staticmethod
    def exists(index_dir):
        return os.path.isfile(os.path.join(index_dir, MANIFEST))

    @classmethod
    def load(cls, index_dir):
        """The index saved in `index_dir`; a clear error when it is missing or inconsistent."""
        manifest_path, arrays_path = os.path.join(index_dir, MANIFEST), os.path.join(index_dir, ARRAYS)
        if not (os.path.isfile(manifest_path) and os.path.isfile(arrays_path)):
            raise FileNotFoundError(
                f"No gallery index in '{index_dir}' (expected {MANIFEST} and {ARRAYS}): build one with "
                "PersonSearcher.index_images / index_video and save it, or tools/search.py --index DIR."
            )
        with open(manifest_path) as f:
            manifest = json.load(f)
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"'{manifest_path}' has format version {manifest.get('format_version')}, expected "
                             f"{FORMAT_VERSION}: rebuild the index.")
        with np.load(arrays_path) as data:
            boxes, scores, embeddings = data["boxes"], data["scores"], data["embeddings"]
        index = cls(manifest["embed_dim"])
        index.entries = manifest["entries"]
        index._keys = {entry["key"] for entry in index.entries}
        index._chunks = [(boxes, scores, embeddings)]
        index._num_rows = len(boxes)
        if sum(entry["count"] for entry in index.entries) != len(boxes) or len(embeddings) != len(boxes):
            raise ValueError(f"Gallery index '{index_dir}': {MANIFEST} and {ARRAYS} disagree on the number of "
                             "detections (interrupted write?): rebuild the index.")
        return index
