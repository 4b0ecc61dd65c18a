"""Multi-view training inputs (PS.INPUT.NUM_VIEWS = k > 1, key ps_plugin.structures.VIEWS): the views of
one input and the flat list of every view of a batch, for the methods that train on k views of an image."""
from ps_plugin.structures import VIEWS

__all__ = ["flatten_views", "record_views"]


def record_views(record):
    """One training input dict -> its view dicts: record[VIEWS] (k views) or [record] (a single view)."""
    return record.get(VIEWS, [record])


def flatten_views(batched_inputs):
    """B training input dicts -> one list of sum_b k_b view dicts, each input's views in order."""
    return [view for record in batched_inputs for view in record_views(record)]
