"""`GalleryIndex`: detections (boxes, scores, embeddings) of indexed gallery images, saved to a folder.

On disk (`index_dir`) an index is a sequence of shard files `shard-000000.npz`, `shard-000001.npz`, ...
Each save appends one shard holding the images indexed since the previous save: "boxes" float32 [R, 4]
XYXY in original image coordinates, "scores" float32 [R], "embeddings" float32 [R, D] and "meta", a JSON
string (format version, embedding dim, model fingerprint, one entry per image: key, source path, frame
number or null, height, width, number of rows; an image's rows follow those of the images before it).
A shard is written under a temporary name and renamed (`atomic_write`), so a save killed at any point
leaves every earlier shard, and so the index as last saved, intact. One process writes an index at a time.
"""
import glob
import json
import logging
import os
import re

import numpy as np

from ps_plugin.utils.files import atomic_write

__all__ = ["GalleryIndex", "image_key"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
SHARD = "shard-{:06d}.npz"
SHARD_NUMBER = re.compile(r"shard-(\d{6})\.npz$")
ENTRY_KEYS = ("key", "source", "frame", "height", "width", "count")


def image_key(source, frame=None):
    """Key of an indexed image: its absolute path, or "<absolute video path>#<frame number>"."""
    source = os.path.abspath(str(source))
    return source if frame is None else f"{source}#{int(frame)}"


def _shards(index_dir):
    """(number, path) of the complete shard files of `index_dir`, in order."""
    found = ((SHARD_NUMBER.search(os.path.basename(p)), p) for p in glob.glob(os.path.join(index_dir, "shard-*.npz")))
    return sorted((int(m.group(1)), p) for m, p in found if m)


def describe_fingerprint(fingerprint):
    """'weights <path> (sha256 <first 12>)' of a model fingerprint (ps_plugin.search.model_fingerprint),
    followed by ' exported as <file> (sha256 <first 12>), ...' for an exported model's (ExportedPredictor)."""
    if not fingerprint:
        return "an unknown model"
    weights = f"weights '{fingerprint['weights'] or '(none: untrained)'}' (sha256 {fingerprint['weights_sha256'][:12]})"
    exported = fingerprint.get("exported")
    if not exported:
        return weights
    files = ", ".join(f"{name} (sha256 {sha[:12]})" for name, sha in exported.items())
    return f"{weights} exported as {files}"


def config_difference(mine, theirs, shown=6):
    """'KEY, KEY, ...' of the keys whose values differ between two fingerprint configs {key: value}
    (the first `shown`, then ' ...'); '' when they agree."""
    changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    return ", ".join(changed[:shown]) + (" ..." if len(changed) > shown else "")


class GalleryIndex:
    """Append-only store of per-image detections; `len(index)` = number of indexed images.

    fingerprint: the model that computes the embeddings (ps_plugin.search.model_fingerprint), or None.
    """

    def __init__(self, embed_dim=None, fingerprint=None):
        self.embed_dim = embed_dim
        self.fingerprint = fingerprint
        self.entries = []
        self._keys = set()
        self._chunks = []
        self._num_rows = 0
        self._saved_dir = None  # the folder holding entries[:_num_saved] as shards up to _next_shard - 1
        self._num_saved = 0
        self._next_shard = 0

    def __len__(self):
        return len(self.entries)

    def __contains__(self, key):
        return key in self._keys

    @property
    def num_detections(self):
        return self._num_rows

    @property
    def num_unsaved(self):
        """Images added since the last save (all of them before the first)."""
        return len(self.entries) - self._num_saved

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

    def require_model(self, fingerprint, where="the gallery index"):
        """Raise ValueError naming both models unless the index was built by the model of `fingerprint`."""
        if self.fingerprint == fingerprint:
            return
        changed = config_difference((self.fingerprint or {}).get("config", {}), fingerprint.get("config", {}))
        config = f"; config keys that differ: {changed}" if changed else ""
        raise ValueError(
            f"{where} was built by {describe_fingerprint(self.fingerprint)}, but the model now is "
            f"{describe_fingerprint(fingerprint)}{config}. Embeddings of two models are not comparable: search "
            "with the model that built the index, or index into a new folder."
        )

    def arrays(self):
        """(boxes float32 [R, 4], scores [R], embeddings [R, D], entry index of each row int64 [R])."""
        empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, self.embed_dim or 0), np.float32))
        boxes, scores, embeddings = (np.concatenate([e] + [c[i] for c in self._chunks]) for i, e in enumerate(empty))
        self._chunks = [(boxes, scores, embeddings)]
        counts = [entry["count"] for entry in self.entries]
        return boxes, scores, embeddings, np.repeat(np.arange(len(counts)), counts)

    def save(self, index_dir):
        """Append the images added since the last save to `index_dir` as one new shard (nothing to add:
        no file). An index not yet saved there is written whole, into a folder that holds no index."""
        index_dir = os.path.abspath(index_dir)
        if index_dir != self._saved_dir:
            if _shards(index_dir):
                raise FileExistsError(f"'{index_dir}' already holds another gallery index: load it "
                                      "(GalleryIndex.load) to extend it, or save to a new folder.")
            self._saved_dir, self._num_saved, self._next_shard = index_dir, 0, 0
        new = self.entries[self._num_saved:]
        if not new:
            return
        os.makedirs(index_dir, exist_ok=True)
        boxes, scores, embeddings, _ = self.arrays()
        first = new[0]["first"]
        meta = {"format_version": FORMAT_VERSION, "embed_dim": self.embed_dim, "fingerprint": self.fingerprint,
                "entries": [{k: entry[k] for k in ENTRY_KEYS} for entry in new]}
        with atomic_write(os.path.join(index_dir, SHARD.format(self._next_shard))) as temporary:
            np.savez(temporary, boxes=boxes[first:], scores=scores[first:], embeddings=embeddings[first:],
                     meta=np.array(json.dumps(meta)))
        self._num_saved, self._next_shard = len(self.entries), self._next_shard + 1

    @staticmethod
    def exists(index_dir):
        return bool(_shards(index_dir))

    @classmethod
    def load(cls, index_dir):
        """The index saved in `index_dir`; a clear error when it is missing, old or damaged."""
        index_dir = os.path.abspath(index_dir)
        shards = _shards(index_dir)
        if not shards:
            old = os.path.isfile(os.path.join(index_dir, "manifest.json"))
            raise FileNotFoundError(
                f"No gallery index in '{index_dir}' (expected shard-*.npz files): "
                + ("it holds an index of format version 1, which this version cannot extend safely; delete "
                   "the folder or use a new one and index again." if old else
                   "build one with PersonSearcher.index_images / index_video, or tools/search.py --index DIR.")
            )
        index = None
        for number, path in shards:
            meta, arrays = _read_shard(path)
            if index is None:
                index = cls(meta["embed_dim"], meta["fingerprint"])
            elif meta["fingerprint"] != index.fingerprint or meta["embed_dim"] != index.embed_dim:
                raise ValueError(f"Gallery index '{index_dir}': {os.path.basename(path)} was written by "
                                 f"{describe_fingerprint(meta['fingerprint'])}, the shards before it by "
                                 f"{describe_fingerprint(index.fingerprint)}. Delete it or use a new --index folder.")
            index._add_shard(meta["entries"], arrays)
        index._saved_dir, index._num_saved, index._next_shard = index_dir, len(index.entries), shards[-1][0] + 1
        return index

    def _add_shard(self, entries, arrays):
        """Append one shard's entries and their rows (boxes, scores, embeddings)."""
        for entry in entries:
            if entry["key"] in self._keys:
                raise ValueError(f"Gallery index: '{entry['key']}' is in two shards (two processes wrote the "
                                 "index at once?). Delete the later shard; its images are indexed again next run.")
            self.entries.append({**entry, "first": self._num_rows})
            self._keys.add(entry["key"])
            self._num_rows += entry["count"]
        self._chunks.append(arrays)


def _read_shard(path):
    """(meta dict, (boxes, scores, embeddings)) of one shard file; a damaged one is named."""
    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            arrays = (data["boxes"], data["scores"], data["embeddings"])
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise ValueError(f"Gallery index shard '{path}' is damaged ({type(e).__name__}: {e}): delete it; the "
                         "images it held are indexed again on the next run.") from e
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"'{path}' has format version {meta.get('format_version')}, expected {FORMAT_VERSION}: "
                         "index into a new folder.")
    rows = {sum(e["count"] for e in meta["entries"])} | {len(a) for a in arrays}
    if len(rows) > 1:
        raise ValueError(f"Gallery index shard '{path}': its entries and arrays disagree on the number of "
                         "detections: delete it; its images are indexed again on the next run.")
    return meta, arrays
