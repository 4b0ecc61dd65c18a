"""Writing SynthPS to COCO json in the `person_id` format (see datasets/person_search_json.py).

Images carry `cam_id`; annotations carry `person_id` (-1 unlabeled) and, beyond COCO,
`visibility` (unoccluded share of the person) and `appearance` (the attributes it was drawn
with). query.json holds one image entry and one annotation per query plus a top-level
`protocol` list with each query's explicit gallery.
"""
import json

PERSON_CATEGORY = {"id": 1, "name": "person"}


def _image_entry(image_id, scene):
    return {
        "id": image_id,
        "file_name": scene.file_name,
        "height": scene.height,
        "width": scene.width,
        "cam_id": scene.camera_id,
    }


def _annotation_entry(annotation_id, image_id, instance):
    x1, y1, x2, y2 = instance.box
    return {
        "id": annotation_id,
        "image_id": image_id,
        "bbox": [x1, y1, x2 - x1, y2 - y1],
        "category_id": PERSON_CATEGORY["id"],
        "area": (x2 - x1) * (y2 - y1),
        "iscrowd": 0,
        "person_id": instance.person_id,
        "visibility": instance.visibility,
        "appearance": instance.appearance.to_dict(),
    }


def scenes_to_coco(scenes, info):
    """COCO dict of `RenderedScene`s: image ids 1.. in scene order, annotation ids 1.. in order."""
    images, annotations = [], []
    for image_id, scene in enumerate(scenes, start=1):
        images.append(_image_entry(image_id, scene))
        for instance in scene.instances:
            annotations.append(_annotation_entry(len(annotations) + 1, image_id, instance))
    return {"info": info, "categories": [PERSON_CATEGORY], "images": images, "annotations": annotations}


def queries_to_coco(queries, scenes_by_name, info):
    """COCO dict with image entry and annotation `query_index + 1` per query, plus `protocol`:
    [{"query_index", "image", "person_id", "gallery": [image names]}]."""
    images, annotations, protocol = [], [], []
    for query in queries:
        entry_id = query["query_index"] + 1
        scene = scenes_by_name[query["image"]]
        instance = next(i for i in scene.instances if i.person_id == query["person_id"])
        images.append(dict(_image_entry(entry_id, scene), query_index=query["query_index"]))
        annotations.append(_annotation_entry(entry_id, entry_id, instance))
        protocol.append({k: query[k] for k in ("query_index", "image", "person_id", "gallery")})
    coco = {"info": info, "categories": [PERSON_CATEGORY], "images": images, "annotations": annotations}
    return dict(coco, protocol=protocol)


def write_json(obj, path):
    """Compact, key-order-preserving json: the same object always gives the same bytes."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, separators=(",", ":"), ensure_ascii=True)
        f.write("\n")
