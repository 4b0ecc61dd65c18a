"""The model-free results file (tools/evaluate_results.py input), a pickle of

    {"gallery": {image_id: {"boxes": float [N, 4] x1y1x2y2, "scores": [N], "embeddings": [N, D]}},
     "queries": [{"image": image_id, "box": [4], "embedding": [D]}, ...]   # protocol order
     "query_sets": {query_dataset_name: [same as "queries"]}}             # optional, written by
                                                                          # PersonSearchEvaluator
"""
import pickle

import numpy as np

from .search_inputs import query_from_record


def save_results(path, gallery, queries, query_sets=None):
    """Write the results pickle. query_sets maps query dataset names to their query lists."""
    content = {"gallery": gallery, "queries": queries}
    if query_sets:
        content["query_sets"] = query_sets
    with open(path, "wb") as f:
        pickle.dump(content, f, protocol=pickle.HIGHEST_PROTOCOL)


def load_results(path, query_set=None):
    """(gallery dict, query list) from a results pickle; query_set picks an entry of "query_sets"."""
    with open(path, "rb") as f:
        content = pickle.load(f)
    missing = {"gallery", "queries"} - set(content)
    if missing:
        raise ValueError(f"{path}: results pickle lacks {sorted(missing)}; expected keys 'gallery' and 'queries' (see results_io.py).")
    if query_set is None:
        return content["gallery"], content["queries"]
    sets = content.get("query_sets", {})
    if query_set not in sets:
        raise KeyError(f"{path}: no query set '{query_set}'; the file holds {sorted(sets)}.")
    return content["gallery"], sets[query_set]


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
