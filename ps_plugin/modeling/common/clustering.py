"""Pseudo labels from unlabeled re-id features: sparse k-reciprocal Jaccard distance, DBSCAN, and
context-aware clustering (OLA, Zhu et al. AAAI 2025, Alg. 1, eq. 1-2), and SpCL's reliability
criterion over three eps (Ge et al. NeurIPS 2020, Sec. 3.2).

Every distance matrix here is a scipy CSR [N, N] whose stored entries are the only pairs closer than
`max_distance` (absent pairs are "far"): nothing builds a dense N x N matrix. Labels follow SpCL
(Ge et al. 2020): clusters are 0 .. C-1 and every outlier gets a label of its own, C, C+1, ...
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from scipy import sparse
from sklearn.cluster import DBSCAN

from .assignment import max_weight_matching

__all__ = [
    "ClusterResult",
    "cluster_features",
    "context_aware_clustering",
    "dbscan_labels",
    "k_nearest_neighbours",
    "k_reciprocal_jaccard",
    "reliable_clusters",
    "same_image_pairs",
    "separate_same_image",
]


def k_nearest_neighbours(features, k, chunk_size=1024):
    """Cosine k nearest neighbours by a chunked matrix product (never N x N at once).

    features [N, D] (L2-normalised rows) -> int64 [N, min(k, N)], row i sorted by decreasing
    similarity; a point is its own first neighbour unless it has exact duplicates.
    """
    features = torch.as_tensor(features, dtype=torch.float32)
    k = min(k, len(features))
    rows = [(chunk @ features.t()).topk(k, dim=1).indices for chunk in features.split(chunk_size)]
    return torch.cat(rows).numpy() if rows else np.zeros((0, k), dtype=np.int64)


def _reciprocal(neighbours, k):
    """R(i, k): i's k-reciprocal neighbours, [N, k+1] int64 padded with -1 (Zhong et al. 2017, eq. 4)."""
    forward = neighbours[:, : k + 1]
    backward = neighbours[forward, : k + 1]  # [N, k+1, k+1]
    mutual = (backward == np.arange(len(neighbours))[:, None, None]).any(axis=2)
    return np.where(mutual, forward, -1)


def _expanded_sets(neighbours, k1, chunk_size=2048):
    """R*(i, k1): R(i, k1) united with every R(c, k1/2), c in R(i, k1), that shares more than 2/3 of
    its members with R(i, k1) (Zhong et al. 2017, eq. 5). -> [N, W] int64 padded with -1."""
    full = _reciprocal(neighbours, k1)
    half = _reciprocal(neighbours, int(np.around(k1 / 2)))
    blocks = []
    for start in range(0, len(full), chunk_size):
        members = full[start : start + chunk_size]  # [b, k1+1]
        candidates = np.where(members[:, :, None] >= 0, half[members], -1)  # [b, k1+1, h]
        inside = (candidates[:, :, :, None] == members[:, None, None, :]).any(axis=3) & (candidates >= 0)
        size = (candidates >= 0).sum(axis=2)
        accepted = inside.sum(axis=2) > 2.0 / 3.0 * size
        candidates = np.where(accepted[:, :, None], candidates, -1)
        blocks.append(np.concatenate([members, candidates.reshape(len(members), -1)], axis=1))
    return np.concatenate(blocks) if blocks else np.zeros((0, 1), dtype=np.int64)


def _encoding(features, expanded, chunk_size=4096):
    """k-reciprocal feature V (sparse [N, N]): V_ij = softmax_j(-d(i, j)) over j in R*(i), with
    d = ||x_i - x_j||^2 = 2 - 2 x_i.x_j (Zhong et al. 2017, eq. 7, SpCL's variant)."""
    rows, cols = [], []
    for start in range(0, len(expanded), chunk_size):
        block = np.sort(expanded[start : start + chunk_size], axis=1)
        keep = block >= 0
        keep[:, 1:] &= block[:, 1:] != block[:, :-1]
        row, pos = np.nonzero(keep)
        rows.append(row + start)
        cols.append(block[row, pos])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    similarity = torch.cat([
        (features[torch.from_numpy(r)] * features[torch.from_numpy(c)]).sum(dim=1)
        for r, c in zip(np.array_split(rows, max(1, len(rows) // 65536)), np.array_split(cols, max(1, len(cols) // 65536)))
    ]).double().numpy()
    weight = np.exp(-(2 - 2 * similarity))
    weight /= np.bincount(rows, weights=weight, minlength=len(features))[rows]
    n = len(features)
    return sparse.csr_matrix((weight, (rows, cols)), shape=(n, n))


def _jaccard_from_encoding(encoding, max_distance, rows_per_block=64):
    """d_J(i, j) = 1 - sum_k min(V_ik, V_jk) / sum_k max(V_ik, V_jk) for every pair sharing support
    (rows of V sum to 1, so the denominator is 2 - sum_k min), kept where < max_distance."""
    n = encoding.shape[0]
    by_column = encoding.tocsc()
    out_rows, out_cols, out_vals = [], [], []
    for start in range(0, n, rows_per_block):
        block = encoding[start : start + rows_per_block].tocoo()
        counts = np.diff(by_column.indptr)[block.col]
        if not counts.sum():
            continue
        offsets = np.repeat(by_column.indptr[block.col] - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        others = by_column.indices[offsets]
        minimum = np.minimum(np.repeat(block.data, counts), by_column.data[offsets])
        keys = np.repeat(block.row, counts) * n + others
        shared = np.bincount(keys, weights=minimum, minlength=block.shape[0] * n).reshape(block.shape[0], n)
        row, col = np.nonzero(shared > 0)
        distance = np.clip(1 - shared[row, col] / (2 - shared[row, col]), 0.0, 1.0)
        keep = (distance < max_distance) & (row + start != col)
        out_rows.append(row[keep] + start)
        out_cols.append(col[keep])
        out_vals.append(distance[keep])
    if not out_rows:
        return sparse.csr_matrix((n, n))
    return sparse.csr_matrix((np.concatenate(out_vals), (np.concatenate(out_rows), np.concatenate(out_cols))), shape=(n, n))


def k_reciprocal_jaccard(features, k1=30, k2=6, max_distance=1.0):
    """Sparse k-reciprocal Jaccard distance (Zhong et al. CVPR 2017, as used by SpCL / OLA).

    features [N, D] -> CSR [N, N] of d_J(i, j) in [0, 1) for the pairs with d_J < max_distance
    (no diagonal). V is the k-reciprocal encoding with k1, averaged over each point's k2 nearest
    neighbours (query expansion, eq. 13) before the Jaccard distance (eq. 11).
    """
    features = F.normalize(torch.as_tensor(features, dtype=torch.float32), dim=1)
    neighbours = k_nearest_neighbours(features, k1 + 1)
    encoding = _encoding(features, _expanded_sets(neighbours, k1))
    if k2 > 1:
        n = len(features)
        k2 = min(k2, neighbours.shape[1])
        average = sparse.csr_matrix(
            (np.full(n * k2, 1.0 / k2), (np.repeat(np.arange(n), k2), neighbours[:, :k2].ravel())), shape=(n, n)
        )
        encoding = (average @ encoding).tocsr()
    return _jaccard_from_encoding(encoding, max_distance)


def separate_same_image(distance, image_ids):
    """Drop the entries of pairs from one image (OLA Alg. 1 lines 1-5: their similarity is 0, i.e.
    distance 1, never a DBSCAN neighbour). distance CSR [N, N], image_ids [N] -> CSR [N, N]."""
    coo = distance.tocoo()
    image_ids = np.asarray(image_ids)
    keep = image_ids[coo.row] != image_ids[coo.col]
    return sparse.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=distance.shape)


def dbscan_labels(distance, eps, min_samples):
    """DBSCAN (scikit-learn) on a precomputed sparse distance -> (labels [N] int64, num_clusters).

    Clusters are 0 .. C-1; outliers get the labels C, C+1, ... in index order (SpCL).
    """
    if eps <= 0:
        raise ValueError(f"DBSCAN eps must be > 0 (PS.OLA.CLUSTER.EPS), got {eps}")
    n = distance.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0
    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(distance.tocsr())
    num_clusters = int(labels.max()) + 1
    outliers = labels < 0
    labels[outliers] = num_clusters + np.arange(outliers.sum())
    return labels.astype(np.int64), num_clusters


@dataclass
class ClusterResult:
    """labels [N] int64 (clusters 0 .. num_clusters-1, then one label per outlier); with the reliability
    criterion, the independence threshold it used."""

    labels: np.ndarray
    num_clusters: int
    independence_threshold: Optional[float] = None

    @property
    def num_outliers(self):
        return len(self.labels) - int(np.isin(self.labels, np.arange(self.num_clusters)).sum())


def same_image_pairs(labels, image_ids):
    """Pairs of boxes of one image that share a label (outliers have labels of their own)."""
    _, counts = np.unique(np.stack([np.asarray(labels), np.asarray(image_ids)], axis=1), axis=0, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def _clusters_with_repeated_images(labels, num_clusters, image_ids):
    """{cluster: member indices} of the clusters that hold several boxes of one image."""
    clustered = np.nonzero(labels < num_clusters)[0]
    pairs = np.stack([labels[clustered], image_ids[clustered]], axis=1)
    _, first, counts = np.unique(pairs, axis=0, return_index=True, return_counts=True)
    flagged = np.unique(labels[clustered[first[counts > 1]]])
    return {int(c): np.nonzero(labels == c)[0] for c in flagged}


def _context_adjustments(features, labels, num_clusters, image_ids, beta, edge_distance):
    """OLA Alg. 1 lines 7-21: for every cluster holding several boxes of one image, Kuhn-Munkres
    (eq. 1-2) between the boxes of each pair of its images, edges where the cosine distance <
    edge_distance, weight 1 - cosine distance. -> (rows, cols, deltas) or None: distance -beta for
    the matched pairs and +beta for the other pairs of the two images (similarity +-beta).

    Two images with one box each in the cluster match exactly when their boxes share an edge, so
    those pairs are adjusted at once; Kuhn-Munkres runs for the pairs that involve a repeated image.
    """
    rows, cols, deltas = [], [], []
    for members in _clusters_with_repeated_images(labels, num_clusters, image_ids).values():
        images, counts = np.unique(image_ids[members], return_counts=True)
        single = members[np.isin(image_ids[members], images[counts == 1])]
        a, b = np.triu_indices(len(single), k=1)
        distance = (1 - features[single] @ features[single].t()).numpy()[a, b]
        rows.append(single[a])
        cols.append(single[b])
        deltas.append(np.where(distance < edge_distance, -beta, beta))
        groups = [members[image_ids[members] == image] for image in images]
        repeated = [i for i, count in enumerate(counts) if count > 1]
        for first in repeated:
            for second in range(len(groups)):
                if second == first or (second in repeated and second < first):
                    continue
                pair = _matched_pair_deltas(features, groups[first], groups[second], beta, edge_distance)
                for out, values in zip((rows, cols, deltas), pair):
                    out.append(values)
    if not rows:
        return None
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(deltas)


def _matched_pair_deltas(features, a, b, beta, edge_distance):
    """Kuhn-Munkres between boxes a and b of two images -> (rows, cols, deltas) of all a x b pairs."""
    distance = (1 - features[a] @ features[b].t()).clamp(min=0)
    matched_a, matched_b = max_weight_matching(1 - distance, distance < edge_distance)
    delta = np.full((len(a), len(b)), beta)
    delta[matched_a, matched_b] = -beta
    return np.repeat(a, len(b)), np.tile(b, len(a)), delta.ravel()


def _adjusted(distance, adjustment):
    """distance CSR with d_ij += delta (both orders) for the adjusted pairs, clipped to [0, 1]; an
    absent pair counts as distance 1, and a pair left at 1 is not stored."""
    n = distance.shape[0]
    rows, cols, deltas = (np.concatenate([x, y]) for x, y in zip(adjustment, (adjustment[1], adjustment[0], adjustment[2])))
    coo = distance.tocoo()
    stored_keys = coo.row.astype(np.int64) * n + coo.col
    order = np.argsort(stored_keys)
    keys = rows.astype(np.int64) * n + cols
    position = np.clip(np.searchsorted(stored_keys[order], keys), 0, max(len(order) - 1, 0))
    found = (stored_keys[order][position] == keys) if len(order) else np.zeros(len(keys), dtype=bool)
    old = np.where(found, coo.data[order][position] if len(order) else 1.0, 1.0)
    new = np.clip(old + deltas, 0.0, 1.0)
    keep_old = ~np.isin(stored_keys, keys)
    keep_new = new < 1.0
    return sparse.csr_matrix(
        (np.concatenate([coo.data[keep_old], new[keep_new]]),
         (np.concatenate([coo.row[keep_old], rows[keep_new]]), np.concatenate([coo.col[keep_old], cols[keep_new]]))),
        shape=distance.shape,
    )


def context_aware_clustering(features, distance, image_ids, eps, min_samples, beta=0.2, edge_distance=0.5):
    """OLA's Context-Aware Clustering (Alg. 1).

    Args:
        features [N, D] (the instance bank M_I; cosine distances for the bipartite graphs),
        distance: CSR [N, N] (k-reciprocal Jaccard of the same features),
        image_ids [N]: the image of each box,
        eps, min_samples: DBSCAN; beta in [0, 1]: the similarity adjustment (paper: 0.2);
        edge_distance: cosine distance below which two boxes are joined by an edge (paper: 0.5).
    Returns:
        ClusterResult of the second DBSCAN (the first one's when no cluster holds two boxes of one image).
    """
    if not 0 <= beta <= 1:
        raise ValueError(f"CAC beta must be in [0, 1] (PS.OLA.CLUSTER.BETA), got {beta}")
    features = F.normalize(torch.as_tensor(features, dtype=torch.float32), dim=1)
    image_ids = np.asarray(image_ids)
    distance = separate_same_image(distance, image_ids)
    labels, num_clusters = dbscan_labels(distance, eps, min_samples)
    adjustment = _context_adjustments(features, labels, num_clusters, image_ids, beta, edge_distance)
    if adjustment is None:
        return ClusterResult(labels, num_clusters)
    return ClusterResult(*dbscan_labels(_adjusted(distance, adjustment), eps, min_samples))


def _relabelled(groups):
    """Any grouping labels [N] -> (labels, C): groups of two or more become clusters 0 .. C-1 (in order
    of first member), every other point an outlier label C, C+1, ... (index order)."""
    _, first, inverse, counts = np.unique(groups, return_index=True, return_inverse=True, return_counts=True)
    clustered = counts[inverse] > 1
    cluster_groups = np.unique(inverse[clustered])
    order = np.argsort(first[cluster_groups])
    rank = np.empty(len(counts), dtype=np.int64)
    rank[cluster_groups[order]] = np.arange(len(cluster_groups))
    labels = np.empty(len(groups), dtype=np.int64)
    labels[clustered] = rank[inverse[clustered]]
    labels[~clustered] = len(cluster_groups) + np.arange((~clustered).sum())
    return labels, len(cluster_groups)


def _group_sizes(keys):
    """Size of each row's group of equal keys [N] or [N, K] -> [N]."""
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    return counts[inverse.ravel()]


def _set_distance(labels, other):
    """1 - IoU(I(i), I'(i)) per point [N]: I(i), I'(i) the sets sharing point i's label in `labels` and
    in `other` (SpCL's R; every outlier label is a set of one)."""
    both = _group_sizes(np.stack([labels, other], axis=1))
    return 1.0 - both / (_group_sizes(labels) + _group_sizes(other) - both)


def reliable_clusters(tight, normal, loose, independence_threshold=None, quantile=0.9):
    """SpCL's reliability criterion (Ge et al. 2020, eq. 5-6) on three clusterings of the same points
    (labels [N] each, outliers with labels of their own) at eps - delta, eps, eps + delta.

    Per point, R_comp = 1 - IoU(I(i), I_tight(i)) and R_indep = 1 - IoU(I(i), I_loose(i)), I(i) the
    members of point i's cluster. A cluster's scores are its members' minima. A clustered point stays
    when its cluster's R_indep <= the independence threshold (by default the `quantile` of the
    clusters' R_indep) and its own R_comp <= its cluster's (i.e. it is as compact as the cluster's most
    compact member); the others become outliers, and a cluster left with one member too.
    -> ClusterResult with the independence threshold used (None when `normal` holds no cluster and
    none was given).
    """
    normal, tight, loose = (np.asarray(x) for x in (normal, tight, loose))
    compactness = _set_distance(normal, tight)
    independence = _set_distance(normal, loose)
    groups, group, counts = np.unique(normal, return_inverse=True, return_counts=True)
    clustered = counts[group] > 1
    cluster_compactness = np.full(len(groups), np.inf)
    cluster_independence = np.full(len(groups), np.inf)
    np.minimum.at(cluster_compactness, group, compactness)
    np.minimum.at(cluster_independence, group, independence)
    scores = np.sort(cluster_independence[counts > 1])
    if independence_threshold is None and len(scores):
        independence_threshold = float(scores[min(len(scores) - 1, int(np.round(len(scores) * quantile)))])
    independent = cluster_independence[group] <= (np.inf if independence_threshold is None else independence_threshold)
    keep = clustered & independent & (compactness <= cluster_compactness[group])
    groups = np.where(keep, normal, normal.max(initial=0) + 1 + np.arange(len(normal)))
    return ClusterResult(*_relabelled(groups), independence_threshold)


def cluster_features(features, image_ids, eps, min_samples, k1=30, k2=6, context=True, beta=0.2, edge_distance=0.5,
                     reliability_delta=0.0, independence_threshold=None):
    """Jaccard distance, then CAC (context=True) or plain DBSCAN -> ClusterResult.

    reliability_delta > 0: cluster at eps - delta, eps and eps + delta and keep the reliable clusters
    (`reliable_clusters`; OLA's code: 0.66 / 0.68 / 0.70); the result then carries the independence
    threshold used (`independence_threshold`: a fixed one, None: the quantile of this call's clusters,
    None again when there are none).
    The distance keeps the pairs that can become neighbours: d_J < the largest eps, plus beta for
    CAC's similarity raise.
    """
    if eps <= 0:
        raise ValueError(f"DBSCAN eps must be > 0 (PS.OLA.CLUSTER.EPS), got {eps}")
    if eps - reliability_delta <= 0:
        raise ValueError("the tight eps EPS - RELIABILITY_DELTA must be > 0 (PS.OLA.CLUSTER), "
                         f"got {eps} - {reliability_delta}")
    loosest = eps + reliability_delta
    max_distance = min(1.0, loosest + beta) if context else loosest
    distance = k_reciprocal_jaccard(features, k1, k2, max_distance=max_distance + 1e-6)

    def at(value):
        if context:
            return context_aware_clustering(features, distance, image_ids, value, min_samples, beta, edge_distance)
        return ClusterResult(*dbscan_labels(distance, value, min_samples))

    if reliability_delta <= 0:
        return at(eps)
    tight, normal, loose = (at(value).labels for value in (eps - reliability_delta, eps, loosest))
    return reliable_clusters(tight, normal, loose, independence_threshold)
