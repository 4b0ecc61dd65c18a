"""CUHK-SYSU test protocol files (TestG{N}.mat), parsed once and cached on disk; numpy only.

Parsing TestG100.mat with scipy.io.loadmat takes seconds (2,900 nested MATLAB structs); the parsed
protocol is stored as an .npz (no pickle) in the cache folder, named by the BLAKE2 digest of the
.mat's bytes, so a changed or replaced source file is parsed again and an unchanged copy anywhere
reuses it. Cache folder: $PS_PLUGIN_CACHE, default $XDG_CACHE_HOME/ps_plugin (~/.cache/ps_plugin).
A cache folder that cannot be written only costs the speed-up.

This module imports neither torch nor Detectron2 (tools/evaluate_results.py starts in well under
a second because of it); cuhk_sysu.py builds the dataset records on top of it.
"""
import functools
import hashlib
import logging
import os
import re
import sys
import tempfile
import zipfile

import numpy as np

from .matlab import mat_string
from .record_fields import xywh_to_xyxy

logger = logging.getLogger(__name__)

FIX = "Prepare CUHK-SYSU as described in datasets/README.md (section CUHK-SYSU)."
# Bump when the parsed layout or the parser's output changes: older cache files are then ignored.
CACHE_VERSION = 1


def xywh_array(value):
    """A MATLAB box field (uint8/uint16/double, [1, 4], or empty) -> float64 [N, 4] (N = 0 when empty)."""
    return np.asarray(value, dtype=np.float64).reshape(-1, 4)


def cached_by_mtime(parse):
    """Cache `parse(path)` in memory per (path, modification time), so a rewritten file is read again."""
    cached = functools.lru_cache(maxsize=32)(lambda path, _mtime: parse(path))

    @functools.wraps(parse)
    def read(path):
        return cached(os.path.abspath(path), os.stat(path).st_mtime_ns)

    return read


def cache_dir():
    """$PS_PLUGIN_CACHE, else $XDG_CACHE_HOME/ps_plugin, else ~/.cache/ps_plugin."""
    default = os.path.join(os.getenv("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ps_plugin")
    return os.getenv("PS_PLUGIN_CACHE", default)


def _test_person_id(idname, mat_file, query_index):
    """'p10581' -> 10581; a ValueError names the file and the query for any other form."""
    match = re.fullmatch(r"p(\d+)", idname)
    if match is None:
        raise ValueError(f"{mat_file}: query {query_index} has idname '{idname}', expected 'p<number>'. {FIX}")
    return int(match.group(1))


def _parse_protocol_mat(mat_file):
    """TestG{N}.mat -> flat arrays (see _pack); loadmat is imported here, only on a cache miss."""
    from scipy.io import loadmat

    content = loadmat(mat_file)
    keys = [k for k in content if k.startswith("TestG")]
    if len(keys) != 1:
        raise ValueError(f"{mat_file}: expected exactly one 'TestG<N>' variable, found {sorted(content)}. {FIX}")
    queries = []
    for index, item in enumerate(content[keys[0]].ravel()):
        query = np.asarray(item["Query"]).ravel()[0]
        gallery = np.asarray(item["Gallery"]).ravel()
        gallery_xywh = np.full((len(gallery), 4), np.nan, dtype=np.float32)
        for row, entry in enumerate(gallery):
            if entry["idlocate"].size:
                gallery_xywh[row] = xywh_array(entry["idlocate"])[0]
        queries.append(
            {
                "imname": mat_string(query["imname"]),
                "box_xywh": xywh_array(query["idlocate"])[0],
                "person_id": _test_person_id(mat_string(query["idname"]), mat_file, index),
                "gallery_imnames": [mat_string(entry["imname"]) for entry in gallery],
                "gallery_xywh": gallery_xywh,
            }
        )
    return _pack(queries)


def _pack(queries):
    """Query dicts -> {name: array} for np.savez. Image names are stored once ("names", unicode
    [U]) and referenced by index; galleries are concatenated with offsets [Q + 1]."""
    names = sorted({q["imname"] for q in queries} | {n for q in queries for n in q["gallery_imnames"]})
    position = {name: i for i, name in enumerate(names)}
    gallery_counts = [len(q["gallery_imnames"]) for q in queries]
    return {
        "names": np.array(names, dtype=str),
        "query_name": np.array([position[q["imname"]] for q in queries], dtype=np.int64),
        "query_xywh": np.array([q["box_xywh"] for q in queries], dtype=np.float64).reshape(-1, 4),
        "person_id": np.array([q["person_id"] for q in queries], dtype=np.int64),
        "gallery_offsets": np.concatenate([[0], np.cumsum(gallery_counts)]).astype(np.int64),
        "gallery_name": np.array([position[n] for q in queries for n in q["gallery_imnames"]], dtype=np.int64),
        "gallery_xywh": np.concatenate([q["gallery_xywh"] for q in queries] or [np.zeros((0, 4))]).astype(np.float32),
    }


def _unpack(arrays):
    """Inverse of _pack: the list of query dicts of read_cuhk_sysu_protocol."""
    names = [sys.intern(name) for name in arrays["names"].tolist()]
    offsets = arrays["gallery_offsets"].tolist()
    gallery_names = arrays["gallery_name"].tolist()
    gallery_xywh = arrays["gallery_xywh"]
    return [
        {
            "imname": names[name],
            "box_xywh": box,
            "person_id": person_id,
            "gallery_imnames": [names[i] for i in gallery_names[start:stop]],
            "gallery_xywh": gallery_xywh[start:stop],
        }
        for name, box, person_id, start, stop in zip(
            arrays["query_name"].tolist(), arrays["query_xywh"], arrays["person_id"].tolist(), offsets[:-1], offsets[1:]
        )
    ]


def _cache_path(mat_file):
    with open(mat_file, "rb") as f:
        digest = hashlib.blake2b(f.read(), digest_size=16).hexdigest()
    return os.path.join(cache_dir(), f"cuhk_sysu_protocol-v{CACHE_VERSION}-{digest}.npz")


def _write_cache(path, arrays):
    """Write atomically (a temporary file, then rename); a folder that cannot be written is logged."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=os.path.dirname(path), suffix=".npz", delete=False) as f:
            np.savez(f, **arrays)
        os.replace(f.name, path)
    except OSError as error:
        logger.info(f"protocol cache not written ({error}); set PS_PLUGIN_CACHE to a writable folder to reuse the parse")


@cached_by_mtime
def read_cuhk_sysu_protocol(mat_file):
    """TestG{N}.mat -> list of queries in protocol order, each a dict:
        imname: str, box_xywh: float64 [4], person_id: int,
        gallery_imnames: list[str] [N] (interned), gallery_xywh: float32 [N, 4] (NaN rows: person
        absent; float32 holds the uint16 values exactly and halves the memory of TestG4000).
    Parsed from the .mat on the first call for a file content, from the disk cache afterwards.
    """
    path = _cache_path(mat_file)
    if os.path.exists(path):
        try:
            with np.load(path, allow_pickle=False) as cached:
                return _unpack(dict(cached))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            logger.warning(f"{path}: unreadable protocol cache ({error}); parsing {mat_file} again")
    arrays = _parse_protocol_mat(mat_file)
    _write_cache(path, arrays)
    return _unpack(arrays)


def cuhk_sysu_search_records(mat_file):
    """The query records of a protocol file as the search protocol reads them, without images:
    {"image_id", "query_index", "annotations": [{"bbox": xyxy [4], "person_id"}],
     "gallery": {"image_ids": [N], "boxes": float32 [N, 4] xyxy, NaN rows: person absent}}.
    The same boxes as cuhk_sysu.load_cuhk_sysu_protocol(mat_file) (no image, so no clipping); a
    ValueError names the query whose box is empty."""
    records = []
    for index, query in enumerate(read_cuhk_sysu_protocol(mat_file)):
        box = xywh_to_xyxy(query["box_xywh"])[0]
        if not (box[2] > box[0] and box[3] > box[1]):
            raise ValueError(f"{mat_file}: query {index} box {query['box_xywh'].tolist()} is empty.")
        records.append(
            {
                "image_id": query["imname"],
                "query_index": index,
                "annotations": [{"bbox": box.tolist(), "person_id": query["person_id"]}],
                "gallery": {
                    "image_ids": list(query["gallery_imnames"]),
                    "boxes": xywh_to_xyxy(query["gallery_xywh"]).astype(np.float32),
                },
            }
        )
    return records
