"""The model-free results file (tools/evaluate_results.py input).

Default format: an .npz of plain arrays (np.load with allow_pickle=False reads it; nothing in it
can run code), written by save_results and PersonSearchEvaluator (PS.EVAL.SAVE_RESULTS):

    format                    str, RESULTS_FORMAT
    gallery/image_ids         str [G]
    gallery/counts            int64 [G], detections per image; rows of an image are contiguous
    gallery/boxes             float [N, 4] x1y1x2y2 (original image), N = sum(counts)
    gallery/scores            float [N]
    gallery/embeddings        float [N, D]
    queries/images            str [Q], protocol order
    queries/boxes             float [Q, 4]
    queries/embeddings        float [Q, D]
    query_sets/<name>/images, /boxes, /embeddings   optional, one per query dataset (the evaluator)

Legacy format: a pickle of
    {"gallery": {image_id: {"boxes": [N, 4], "scores": [N], "embeddings": [N, D]}},
     "queries": [{"image": image_id, "box": [4], "embedding": [D]}, ...],
     "query_sets": {query_dataset_name: [same as "queries"]}}                   # optional
A pickle runs arbitrary code when loaded: load_results reads one only with allow_pickle=True
(tools/evaluate_results.py --allow-pickle), with a warning.
"""
import pickle
import warnings

import numpy as np

from .gallery_results import GalleryResults
from .search_inputs import query_from_record

RESULTS_FORMAT = "ps_plugin.search_results.v1"
_ZIP_MAGIC = b"PK\x03\x04"


def _query_arrays(prefix, queries):
    """{prefix/images, prefix/boxes, prefix/embeddings} of a query list."""
    return {
        f"{prefix}/images": np.array([str(q["image"]) for q in queries], dtype=str),
        f"{prefix}/boxes": np.array([np.asarray(q["box"], dtype=np.float64).reshape(4) for q in queries]).reshape(-1, 4),
        f"{prefix}/embeddings": np.stack([np.asarray(q["embedding"], dtype=np.float32).reshape(-1) for q in queries]),
    }


def save_results(path, gallery, queries, query_sets=None):
    """Write the .npz results file. gallery: a GalleryResults or {image_id: {"boxes", "scores",
    "embeddings"}}; queries: [{"image", "box", "embedding"}] in protocol order; query_sets maps
    query dataset names to their query lists."""
    if not queries:
        raise ValueError(f"{path}: no queries to save; the results file needs one query per protocol query.")
    if not isinstance(gallery, GalleryResults):
        gallery = GalleryResults.from_dict(gallery, source=str(path), normalize=False)
    arrays = {
        "format": np.array(RESULTS_FORMAT),
        "gallery/image_ids": np.array(gallery.image_ids, dtype=str),
        "gallery/counts": gallery.counts,
        "gallery/boxes": gallery.boxes,
        "gallery/scores": gallery.scores,
        "gallery/embeddings": gallery.embeddings,
        **_query_arrays("queries", queries),
    }
    for name, saved in (query_sets or {}).items():
        arrays.update(_query_arrays(f"query_sets/{name}", saved))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _queries_from_arrays(arrays, prefix):
    images, boxes, embeddings = (arrays[f"{prefix}/{key}"] for key in ("images", "boxes", "embeddings"))
    return [{"image": image, "box": box, "embedding": embedding}
            for image, box, embedding in zip(images.tolist(), boxes, embeddings)]


def _load_npz(path):
    """(GalleryResults, {query set name or None: query list}) of an .npz results file."""
    with np.load(path, allow_pickle=False) as content:
        arrays = dict(content)
    if str(arrays.get("format", "")) != RESULTS_FORMAT:
        raise ValueError(f"{path}: not a results file of format '{RESULTS_FORMAT}' (write it with save_results).")
    gallery = GalleryResults.from_arrays(
        arrays["gallery/image_ids"].tolist(), arrays["gallery/counts"], arrays["gallery/boxes"],
        arrays["gallery/scores"], arrays["gallery/embeddings"], source=str(path),
    )
    sets = {name[len("query_sets/"):-len("/images")]
            for name in arrays if name.startswith("query_sets/") and name.endswith("/images")}
    query_sets = {None: _queries_from_arrays(arrays, "queries")}
    query_sets.update({name: _queries_from_arrays(arrays, f"query_sets/{name}") for name in sets})
    return gallery, query_sets


def _load_pickle(path):
    """(gallery dict, {query set name or None: query list}) of a legacy results pickle (runs its code)."""
    warnings.warn(
        f"{path}: loading a pickle, which runs any code it holds; load only results you trust, and prefer "
        "the .npz format (ps_plugin.evaluation.save_results).",
        stacklevel=3,
    )
    try:
        with open(path, "rb") as f:
            content = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise ValueError(f"{path}: not a readable results pickle ({type(e).__name__}: {e}); write results with "
                         "ps_plugin.evaluation.save_results (.npz).") from e
    if not isinstance(content, dict):
        raise ValueError(f"{path}: the pickle holds a {type(content).__name__}, expected a dict (see results_io.py).")
    missing = {"gallery", "queries"} - set(content)
    if missing:
        raise ValueError(
            f"{path}: results pickle lacks {sorted(missing)}; expected keys 'gallery' and 'queries' (see results_io.py)."
        )
    return content["gallery"], {None: content["queries"], **content.get("query_sets", {})}


def load_results(path, query_set=None, allow_pickle=False):
    """(gallery, query list) from a results file; query_set picks an entry of its query sets.

    gallery is a GalleryResults (.npz) or the pickle's gallery dict (evaluate_search takes both).
    A file that is not an .npz is refused unless allow_pickle (a pickle can run arbitrary code).
    """
    with open(path, "rb") as f:
        is_npz = f.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
    if is_npz:
        gallery, query_sets = _load_npz(path)
    elif allow_pickle:
        gallery, query_sets = _load_pickle(path)
    else:
        raise ValueError(
            f"{path}: not an .npz results file. If it is a pickle, loading it would run any code it holds: "
            "convert it where you trust it (tools/evaluate_results.py FILE --allow-pickle --write-npz out.npz), "
            "or pass --allow-pickle (allow_pickle=True) for a file you trust."
        )
    if query_set not in query_sets:
        raise KeyError(f"{path}: no query set '{query_set}'; the file holds {sorted(k for k in query_sets if k)}.")
    return gallery, query_sets[query_set]


def queries_for_protocol(saved_queries, query_records, source="results"):
    """SearchQuery list pairing saved queries with the protocol's query records, in order.

    Raises ValueError when the counts differ, or when a saved query's image differs from the
    protocol's at the same position (naming the query).
    """
    if len(saved_queries) != len(query_records):
        raise ValueError(
            f"{source}: {len(saved_queries)} queries, but the protocol has {len(query_records)}. "
            "Save one query per protocol query, in protocol order."
        )
    queries = []
    for index, (saved, record) in enumerate(zip(saved_queries, query_records)):
        if str(saved["image"]) != record["image_id"]:
            raise ValueError(
                f"{source}: query {index} is on image '{saved['image']}', the protocol's query {index} on "
                f"'{record['image_id']}'. Save the queries in protocol order."
            )
        queries.append(query_from_record(record, np.asarray(saved["embedding"], dtype=np.float32)))
    return queries
