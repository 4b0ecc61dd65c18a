"""SynthPS: the synthetic person-search set `tools/generate_synthps.py` writes (see
ps_plugin/data/synthps/ and datasets/README.md).

On disk, under `<DETECTRON2_DATASETS>/synthps/`:
    images/s00000.jpg ...
    train.json, gallery.json   COCO json with `person_id` (person_search_json.py), `cam_id`
    query.json                 one image entry + one annotation per query (json order = query
                               order) and a top-level `protocol` list: {"query_index", "image",
                               "person_id", "gallery": [image names]}
    identities.json            appearance attributes of every identity (not needed to load)

Registered sets: `synthps_train`, `synthps_gallery`, `synthps_query` (protocol "generic": every
query carries its explicit gallery in the compact form of docs/DATA_RECORDS.md), and the same three
for style b (`generate_synthps.py --style b`, the domain-adaptation target) under
`<DETECTRON2_DATASETS>/synthps_b/`: `synthps_b_train`, `synthps_b_gallery`, `synthps_b_query`.
"""
import json
import os

import numpy as np

from .common import datasets_root, register_person_search, require_path
from .person_search_json import load_person_search_json

GENERATE_FIX = (
    "Generate it with `python tools/generate_synthps.py` (or `make demo`); synthps_b with `--style b`."
)


def synthps_root(root=None, folder="synthps"):
    """The SynthPS folder: `root`, else `<DETECTRON2_DATASETS>/<folder>`; FileNotFoundError if missing."""
    root = root if root is not None else os.path.join(datasets_root(), folder)
    return require_path(root, "SynthPS dataset folder", GENERATE_FIX)


def load_synthps(root, split):
    """Records of `split` ("train" or "gallery") from `<root>/<split>.json`, images in `<root>/images`."""
    json_file = require_path(os.path.join(root, f"{split}.json"), f"SynthPS {split} annotations", GENERATE_FIX)
    return load_person_search_json(json_file, os.path.join(root, "images"), camera_regex=None)


def _boxes_by_image(gallery_records):
    """image name -> {person_id: [x1, y1, x2, y2]} of the labeled people of each gallery image."""
    return {
        r["image_id"]: {a["person_id"]: a["bbox"] for a in r["annotations"] if a["person_id"] >= 0}
        for r in gallery_records
    }


def compact_gallery(query, boxes_by_image, json_file):
    """{"image_ids": list[str] [G], "boxes": float32 [G, 4] xyxy, NaN rows where the person is absent}."""
    boxes = np.full((len(query["gallery"]), 4), np.nan, dtype=np.float32)
    for row, image_id in enumerate(query["gallery"]):
        if image_id not in boxes_by_image:
            raise ValueError(
                f"{json_file}: query {query['query_index']} lists gallery image '{image_id}', which gallery.json "
                f"does not hold. {GENERATE_FIX}"
            )
        box = boxes_by_image[image_id].get(query["person_id"])
        if box is not None:
            boxes[row] = box
    return {"image_ids": list(query["gallery"]), "boxes": boxes}


def _check_query_record(record, query, json_file):
    annotations = record["annotations"]
    person_ids = [a["person_id"] for a in annotations]
    if record["image_id"] != query["image"] or person_ids != [query["person_id"]]:
        raise ValueError(
            f"{json_file}: query {query['query_index']} (image '{query['image']}', person {query['person_id']}) does "
            f"not match image entry {query['query_index'] + 1} with its single annotation. {GENERATE_FIX}"
        )


def load_synthps_queries(root):
    """One record per query, in protocol order: the query scene with its single query annotation,
    plus "query_index" and the explicit "gallery" (`compact_gallery`)."""
    json_file = require_path(os.path.join(root, "query.json"), "SynthPS query protocol", GENERATE_FIX)
    records = load_person_search_json(json_file, os.path.join(root, "images"), camera_regex=None)
    with open(json_file, encoding="utf-8") as f:
        protocol = json.load(f).get("protocol")
    if protocol is None or len(protocol) != len(records):
        raise ValueError(f"{json_file}: expected a 'protocol' list with one entry per query image. {GENERATE_FIX}")
    boxes_by_image = _boxes_by_image(load_synthps(root, "gallery"))
    for record, query in zip(records, protocol):
        _check_query_record(record, query, json_file)
        record["query_index"] = query["query_index"]
        record["gallery"] = compact_gallery(query, boxes_by_image, json_file)
    return records


def register_all_synthps(root=None, prefix="synthps"):
    """Register `<prefix>_train`, `<prefix>_gallery` and `<prefix>_query`.

    Nothing is read here: the folder (`root`, default `<DETECTRON2_DATASETS>/<prefix>`) is resolved
    when a set is first loaded.
    """
    train, gallery, query = f"{prefix}_train", f"{prefix}_gallery", f"{prefix}_query"

    def folder():
        return synthps_root(root, prefix)

    register_person_search(train, lambda: load_synthps(folder(), "train"))
    register_person_search(gallery, lambda: load_synthps(folder(), "gallery"), query_datasets=[query])
    register_person_search(query, lambda: load_synthps_queries(folder()), gallery_dataset=gallery, protocol="generic")
