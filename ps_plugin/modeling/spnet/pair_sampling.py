"""Box identities and QC query-image pair sampling (Sec. 3.2, supplementary Sec. 8)."""
import zlib
from dataclasses import dataclass

import torch

LABEL_MODES = ("pid", "box")


def box_identity_labels(views, mode="pid"):
    """One int64 identity per GT box of every view: list of [N_v] tensors.

    "box": every physical box is its own identity, shared by the k views of its image
    (weakly labeled pre-training): -(crc32(dataset/image_id) * 2**16 + gt_box_id) - 1.
    "pid": gt_pids >= 0 are the identity; unlabeled boxes (-1) get their "box" identity.
    `views` are the flattened view dicts (see modeling.common.views.flatten_views) with "instances"
    (gt_pids, gt_box_ids) and the record's "dataset_name" / "image_id" / "file_name".
    """
    if mode not in LABEL_MODES:
        raise ValueError(f"PS.SPNET.TRAIN.LABELS={mode!r}: use 'pid' or 'box'")
    labels = []
    for view in views:
        instances = view["instances"]
        if not instances.has("gt_box_ids"):
            raise ValueError(
                f"Image {view.get('image_id', view.get('file_name'))!r} has no gt_box_ids: SPNet training "
                "needs PersonSearchDatasetMapper's instances (ps_plugin.data.mapper)."
            )
        key = f"{view.get('dataset_name', '')}/{view.get('image_id', view.get('file_name', ''))}"
        image_hash = zlib.crc32(key.encode("utf-8"))
        box_labels = -(image_hash * 65536 + instances.gt_box_ids.to(torch.int64)) - 1
        if mode == "pid":
            pids = instances.gt_pids.to(torch.int64)
            box_labels = torch.where(pids >= 0, pids, box_labels)
        labels.append(box_labels)
    return labels


@dataclass(frozen=True)
class QueryPair:
    """A query GT box (view, index) paired with a gallery view; `target` indexes the gallery's
    GT box with the query's identity (-1: absent); `group` is the priority group 1, 2 or 3."""

    query_view: int
    query_box: int
    gallery_view: int
    target: int
    group: int


def pair_group(query_view, gallery_view, query_label, gallery_labels):
    """Priority group of a (query, gallery image) pair (supplementary Sec. 8).

    1: the query is not from this image, but one of the image's boxes shares its label;
    2: the query comes from this image (self comparison);
    3: everything else (the label is absent: every anchor is a negative).
    """
    if query_view == gallery_view:
        return 2
    return 1 if bool((gallery_labels == query_label).any()) else 3


def sample_query_pairs(labels, max_pairs=32, generator=None):
    """Up to `max_pairs` QueryPairs over all (GT box, view) combinations, group 1 first, then 2, 3.

    labels: list over views of [N_v] int64 identities. Pairs are shuffled within each group.
    """
    groups = {1: [], 2: [], 3: []}
    for query_view, query_labels in enumerate(labels):
        for query_box, query_label in enumerate(query_labels.tolist()):
            for gallery_view, gallery_labels in enumerate(labels):
                group = pair_group(query_view, gallery_view, query_label, gallery_labels)
                hits = (gallery_labels == query_label).nonzero().flatten()
                target = int(hits[0]) if len(hits) else -1
                groups[group].append(QueryPair(query_view, query_box, gallery_view, target, group))
    chosen = []
    for group in (1, 2, 3):
        order = torch.randperm(len(groups[group]), generator=generator).tolist()
        chosen += [groups[group][i] for i in order]
    return chosen[:max_pairs]
