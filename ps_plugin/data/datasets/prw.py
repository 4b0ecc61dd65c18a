"""PRW (Zheng et al., "Person Re-identification in the Wild", CVPR 2017): 11,816 frames from 6
cameras, 5,704 training and 6,112 test frames, 2,057 queries.

Expected tree (datasets/README.md):
    <root>/prw/frames/c1s1_000151.jpg ...             camera id = the digit after "c"
    <root>/prw/annotations/c1s1_000151.jpg.mat        box_new (else anno_file, else anno_previous):
                                                      rows [pid, x, y, w, h]; pid -2 = unlabeled
    <root>/prw/frame_train.mat, frame_test.mat        img_index_train / img_index_test (names, no .jpg)
    <root>/prw/query_info.txt                         "pid x y w h imname" per line (imname, no .jpg)

Identities: training ids are mapped to contiguous 0..K-1 (sorted original ids); test ids keep
PRW's numbering, identical in prw_gallery and prw_query. Negative ids become -1 (unlabeled).
"""
import os
import re

import numpy as np
from scipy.io import loadmat

from .common import UNLABELED, datasets_root, make_record, read_image_size, register_person_search, require_path, xywh_to_xyxy
from .matlab import mat_strings

_FIX = "Prepare PRW as described in datasets/README.md (section PRW)."
_ANNOTATION_KEYS = ("box_new", "anno_file", "anno_previous")


def prw_camera_id(image_name):
    """'c3s1_012345.jpg' -> 3; a ValueError names the image when it has no camera prefix."""
    match = re.match(r"c(\d)", os.path.basename(image_name))
    if match is None:
        raise ValueError(f"PRW image '{image_name}': expected a name starting with 'c<camera digit>'. {_FIX}")
    return int(match.group(1))


def read_prw_annotation(mat_file):
    """annotations/<img>.jpg.mat -> (person_ids int64 [N] with negatives -> -1, boxes_xywh float64 [N, 4])."""
    content = loadmat(mat_file)
    key = next((k for k in _ANNOTATION_KEYS if k in content), None)
    if key is None:
        keys = sorted(k for k in content if not k.startswith("__"))
        raise ValueError(f"{mat_file}: expected one of {list(_ANNOTATION_KEYS)}, found {keys}. {_FIX}")
    rows = np.asarray(content[key], dtype=np.float64).reshape(-1, 5)
    person_ids = rows[:, 0].astype(np.int64)
    person_ids[person_ids < 0] = UNLABELED
    return person_ids, rows[:, 1:]


def read_prw_queries(query_file):
    """query_info.txt -> list of (person_id int, box_xywh float64 [4], image name with .jpg)."""
    queries = []
    with open(query_file) as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 6:
                raise ValueError(f"{query_file}:{number}: expected 'pid x y w h imname', got {line.strip()!r}.")
            queries.append((int(float(fields[0])), np.array(fields[1:5], dtype=np.float64), fields[5] + ".jpg"))
    return queries


class _PrwPaths:
    """The files of one PRW copy under `root`; each accessor raises FileNotFoundError if absent."""

    def __init__(self, root=None):
        self.base = os.path.join(root if root is not None else datasets_root(), "prw")

    def _require(self, *parts, what):
        return require_path(os.path.join(self.base, *parts), f"PRW {what}", _FIX)

    def frame_dir(self):
        return self._require("frames", what="frame folder")

    def annotation(self, image_name):
        return self._require("annotations", image_name + ".mat", what=f"annotation of {image_name}")

    def frame_list(self, split):
        return self._require(f"frame_{split}.mat", what=f"{split} frame list")

    def query_info(self):
        return self._require("query_info.txt", what="query list")


def _frame_record(paths, image_name, boxes_xywh, person_ids, **extra):
    file_name = os.path.join(paths.frame_dir(), image_name)
    height, width = read_image_size(file_name)
    return make_record(
        file_name, image_name, height, width, xywh_to_xyxy(boxes_xywh), person_ids, prw_camera_id(image_name), **extra
    )


def _split_frames(paths, split):
    """Frame names (with .jpg) of split 'train' or 'test', and their (person_ids, boxes_xywh)."""
    list_file = paths.frame_list(split)
    content = loadmat(list_file)
    key = f"img_index_{split}"
    if key not in content:
        raise ValueError(f"{list_file}: expected a variable '{key}'. {_FIX}")
    names = [name + ".jpg" for name in mat_strings(content[key])]
    return names, [read_prw_annotation(paths.annotation(name)) for name in names]


def _make_ids_contiguous(records):
    """Relabel the labeled ids of `records` (in place) to 0..K-1 in sorted order of the original ids."""
    labeled = sorted({a["person_id"] for r in records for a in r["annotations"] if a["person_id"] >= 0})
    contiguous = {pid: index for index, pid in enumerate(labeled)}
    for record in records:
        for annotation in record["annotations"]:
            annotation["person_id"] = contiguous.get(annotation["person_id"], UNLABELED)
    return records


def load_prw_train(root=None):
    """Training frames; labeled ids (of the boxes kept after cleaning) mapped to contiguous 0..K-1."""
    paths = _PrwPaths(root)
    names, annotations = _split_frames(paths, "train")
    records = [_frame_record(paths, name, boxes, pids) for name, (pids, boxes) in zip(names, annotations)]
    return _make_ids_contiguous(records)


def load_prw_gallery(root=None):
    """Test frames with PRW's own identity numbers."""
    paths = _PrwPaths(root)
    names, annotations = _split_frames(paths, "test")
    return [_frame_record(paths, name, boxes, pids) for name, (pids, boxes) in zip(names, annotations)]


def load_prw_queries(root=None):
    """One record per line of query_info.txt (one annotation, "query_index", camera_id); no "gallery":
    the gallery is prw_gallery without the query's own frame."""
    paths = _PrwPaths(root)
    records = []
    for index, (pid, box, image_name) in enumerate(read_prw_queries(paths.query_info())):
        record = _frame_record(paths, image_name, box, [pid], query_index=index)
        if not record["annotations"]:
            raise ValueError(f"{paths.query_info()}: query {index} box {box.tolist()} lies outside {image_name}.")
        records.append(record)
    return records


def register_all_prw(root=None):
    """Register prw_train, prw_gallery and prw_query; nothing is read until loaded.

    root: datasets root; None resolves $DETECTRON2_DATASETS (default `datasets/`) at load time.
    """
    register_person_search("prw_train", lambda: load_prw_train(root))
    register_person_search("prw_gallery", lambda: load_prw_gallery(root), query_datasets=["prw_query"])
    register_person_search(
        "prw_query", lambda: load_prw_queries(root), gallery_dataset="prw_gallery", protocol="prw"
    )
