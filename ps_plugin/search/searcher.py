"""`PersonSearcher`: index a gallery (images or video frames) with a person-search model, then rank
its detections against a query person by cosine similarity of re-id embeddings."""
import logging
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
from tqdm import tqdm

from .exported import ExportedPredictor
from .index import GalleryIndex, image_key
from .predictor import PersonSearchPredictor, model_fingerprint, require_weights
from .sources import iter_video_frames, list_images, read_image_bgr, read_video_frame, video_frame_count

__all__ = ["PersonSearcher", "SearchHit"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchHit:
    """One ranked gallery detection; `box` is XYXY in the original image (or frame)."""

    rank: int
    image: str
    frame: Optional[int]
    box: tuple
    score: float
    similarity: float

    def to_dict(self):
        return {**asdict(self), "box": [float(v) for v in self.box]}


def _unit_rows(x):
    """Rows of x [N, D] divided by their L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class PersonSearcher:
    """Gallery indexing and query search on top of any ps_plugin meta-architecture.

    Example::

        searcher = PersonSearcher.from_config(cfg, index_dir="output/my_index")
        searcher.index_images("footage/")           # skips images indexed before; saves as it goes
        searcher.index_video("cam1.mp4", every=10)
        hits = searcher.search("query.jpg", [x1, y1, x2, y2], top_k=10)
        searcher.skipped                            # images / frames that could not be read

    With an `index_dir`, indexing saves the new images every `save_every` images and whenever it
    stops (done, an error, Ctrl-C); a later run with the same folder continues where it stopped.
    An unreadable image or video frame is skipped with a warning and listed in `skipped`
    (strict=True raises instead).
    """

    def __init__(self, predictor, index=None, index_dir=None, min_score=0.5, save_every=50):
        """
        Args:
            predictor (PersonSearchPredictor or ExportedPredictor): the model with its test-time preprocessing.
            index (GalleryIndex): the gallery; None = a new empty one.
            index_dir: where `save()` and the progress saves write the index.
            min_score: detections scoring below it are never returned (cfg.PS.EVAL.DET_THRESH).
            save_every: with an index_dir, save after every this many newly indexed images (0: only at the end).
        """
        self.predictor = predictor
        self.index = index if index is not None else GalleryIndex()
        self.index_dir = index_dir
        self.min_score = min_score
        self.save_every = save_every
        self.skipped = []  # {"source", "frame", "error"} of every unreadable image / frame

    @classmethod
    def from_config(cls, cfg, index_dir=None, allow_untrained=False, exported=None, **kwargs):
        """Build the model from `cfg` (weights: cfg.MODEL.WEIGHTS, required unless allow_untrained), or
        with `exported` (a gallery.ts / gallery.onnx of tools/export_model.py) run that exported model
        (ExportedPredictor; `cfg` is the config it was exported with). Load `index_dir` when it holds an
        index, which must come from the same model (fingerprint; an exported model's differs from the
        PyTorch model's)."""
        if exported:
            predictor = ExportedPredictor(cfg, exported)
            fingerprint = predictor.fingerprint
        else:
            require_weights(cfg, allow_untrained)
            predictor, fingerprint = None, model_fingerprint(cfg)  # the model is built once the index fits
        if index_dir and GalleryIndex.exists(index_dir):
            index = GalleryIndex.load(index_dir)
            index.require_model(fingerprint, f"The gallery index '{index_dir}'")
        else:
            index = GalleryIndex(fingerprint=fingerprint)
        predictor = predictor or PersonSearchPredictor(cfg)
        return cls(predictor, index, index_dir=index_dir, min_score=cfg.PS.EVAL.DET_THRESH, **kwargs)

    def save(self, index_dir=None):
        """Write the index to `index_dir` (default: the one given at construction)."""
        index_dir = index_dir or self.index_dir
        if not index_dir:
            raise ValueError("PersonSearcher.save: give index_dir (no folder was set at construction).")
        self.index.save(index_dir)

    def index_images(self, inputs, progress=True, strict=False):
        """Detect and embed every new image of `inputs` (files, folders, globs); returns how many were added."""
        paths = [p for p in list_images(inputs) if image_key(p) not in self.index]
        with self._saving_progress():
            added = 0
            for path in tqdm(paths, desc="Indexing images", unit="image", disable=not progress):
                try:
                    image = read_image_bgr(path)
                except OSError as error:
                    self._skip(path, None, error, strict)
                    continue
                self._add(path, image)
                added += 1
        return added

    def index_video(self, path, every=1, progress=True, strict=False):
        """Detect and embed frames 0, every, 2*every, ... of a video; returns how many frames were added."""
        total = -(-video_frame_count(path) // every) or None
        added = 0
        frames = tqdm(iter_video_frames(path, every, on_error=lambda n, e: self._skip(path, n, e, strict)),
                      total=total, desc=f"Indexing {os.path.basename(path)}", unit="frame", disable=not progress)
        with self._saving_progress():
            for frame_number, image in frames:
                if image_key(path, frame_number) not in self.index:
                    self._add(path, image, frame_number)
                    added += 1
        return added

    def _add(self, source, image, frame=None):
        """Index one image; save every `save_every` additions."""
        self.index.add(source, self.predictor.detect(image), *image.shape[:2], frame=frame)
        if self.index_dir and self.save_every and self.index.num_unsaved >= self.save_every:
            self.save()

    def _skip(self, source, frame, error, strict):
        """Raise `error` when strict; otherwise warn and record the unreadable image or frame."""
        if strict:
            raise error
        logger.warning(f"Skipped {'frame %d of ' % frame if frame is not None else ''}'{source}': {error}")
        self.skipped.append({"source": os.path.abspath(str(source)), "frame": frame, "error": str(error)})

    @contextmanager
    def _saving_progress(self):
        """Save the index (with an index_dir) when the block ends, normally or by an exception."""
        try:
            yield
        finally:
            if self.index_dir:
                self.save()

    def embed_query(self, image, box):
        """Query image (path or BGR uint8 [H, W, 3]) and its person's XYXY box -> unit embedding [D]."""
        if isinstance(image, (str, os.PathLike)):
            image = read_image_bgr(str(image))
        box = np.asarray(box, dtype=np.float32).reshape(4)
        height, width = image.shape[:2]
        if not (0 <= box[0] and box[0] + 1 <= box[2] <= width and 0 <= box[1] and box[1] + 1 <= box[3] <= height):
            raise ValueError(f"Query box {box.tolist()} is not an XYXY box of at least 1x1 pixel inside the "
                             f"{width}x{height} query image.")
        return _unit_rows(self.predictor.embed_boxes(image, box[None]))[0]

    def search(self, image, box, top_k=10, min_score=None):
        """Rank the gallery against the person in `box` of `image`; returns up to top_k SearchHit, best first."""
        self._require_gallery()
        return self.search_embedding(self.embed_query(image, box), top_k, min_score)

    def search_embedding(self, embedding, top_k=10, min_score=None):
        """Rank the gallery detections scoring >= min_score by cosine similarity to `embedding` [D]."""
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k={top_k!r}: ask for at least one hit (an integer >= 1).")
        self._require_gallery()
        boxes, scores, embeddings, entry_of_row = self.index.arrays()
        if len(embedding) != self.index.embed_dim:
            raise ValueError(f"Query embedding dim {len(embedding)} differs from the index's {self.index.embed_dim}: "
                             "query with the model that built the index.")
        min_score = self.min_score if min_score is None else min_score
        rows = np.flatnonzero(scores >= min_score)
        if len(rows) == 0:
            logger.warning(f"No gallery detection scores >= {min_score} in {len(self.index)} indexed images.")
        similarity = _unit_rows(embeddings[rows]) @ _unit_rows(np.asarray(embedding, np.float32))
        best = np.argsort(-similarity, kind="stable")[:top_k]
        return [self._hit(rank, rows[i], boxes, scores, similarity[i], entry_of_row) for rank, i in enumerate(best, 1)]

    def load_image(self, hit):
        """BGR uint8 [H, W, 3] of the image (or video frame) a SearchHit points to."""
        return read_image_bgr(hit.image) if hit.frame is None else read_video_frame(hit.image, hit.frame)

    def _hit(self, rank, row, boxes, scores, similarity, entry_of_row):
        entry = self.index.entries[entry_of_row[row]]
        return SearchHit(rank=rank, image=entry["source"], frame=entry["frame"], box=tuple(boxes[row].tolist()),
                         score=float(scores[row]), similarity=float(similarity))

    def _require_gallery(self):
        if len(self.index) == 0:
            where = f" '{self.index_dir}'" if self.index_dir else ""
            raise ValueError(f"The gallery index{where} is empty: index images or a video first "
                             "(PersonSearcher.index_images / index_video, or tools/search.py --gallery).")
