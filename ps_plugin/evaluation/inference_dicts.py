"""The dataset dicts one person-search test pass runs on: the gallery and every distinct query."""
from detectron2.data import DatasetCatalog


def query_key(record):
    """(image_id, query box) identifying a query across query datasets."""
    return record["image_id"], tuple(round(float(v), 2) for v in record["annotations"][0]["bbox"])


def build_person_search_test_dicts(gallery_name, query_names):
    """Gallery records followed by one record per distinct query.

    Queries shared by several query datasets (CUHK-SYSU TestG50..TestG4000 hold the same 2,900)
    are run once: each distinct query record (a shallow copy) carries
    "query_keys": [(query_dataset_name, query_index), ...], every protocol slot it fills.
    Returns list[dict], gallery first.
    """
    records = list(DatasetCatalog.get(gallery_name))
    distinct = {}
    for name in query_names:
        for record in DatasetCatalog.get(name):
            key = query_key(record)
            if key not in distinct:
                distinct[key] = {k: v for k, v in record.items() if k != "gallery"}
                distinct[key]["dataset_name"] = name
                distinct[key]["query_keys"] = []
            distinct[key]["query_keys"].append((name, record["query_index"]))
    return records + list(distinct.values())
