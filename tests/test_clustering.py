"""Sparse k-reciprocal Jaccard distance (against a dense reference), DBSCAN labels and OLA's
context-aware clustering."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import sparse

from ps_plugin.modeling.common.clustering import (
    cluster_features,
    context_aware_clustering,
    dbscan_labels,
    k_nearest_neighbours,
    k_reciprocal_jaccard,
    reliable_clusters,
    same_image_pairs,
)


def dense_jaccard(features, k1, k2):
    """Zhong et al. (CVPR 2017) re-ranking's Jaccard distance, written densely and loop by loop."""
    n = len(features)
    distance = 2 - 2 * features @ features.T
    rank = np.argsort(-(features @ features.T), axis=1, kind="stable")

    def reciprocal(i, k):
        forward = rank[i, : k + 1]
        return np.array([j for j in forward if i in rank[j, : k + 1]], dtype=np.int64)

    encoding = np.zeros((n, n))
    for i in range(n):
        members = reciprocal(i, k1)
        expanded = set(members.tolist())
        for c in members:
            half = reciprocal(c, int(np.around(k1 / 2)))
            if len(np.intersect1d(half, members)) > 2 / 3 * len(half):
                expanded |= set(half.tolist())
        expanded = np.array(sorted(expanded))
        weight = np.exp(-distance[i, expanded])
        encoding[i, expanded] = weight / weight.sum()
    encoding = np.stack([encoding[rank[i, :k2]].mean(axis=0) for i in range(n)])
    minimum = np.minimum(encoding[:, None, :], encoding[None, :, :]).sum(axis=2)
    maximum = np.maximum(encoding[:, None, :], encoding[None, :, :]).sum(axis=2)
    return 1 - minimum / maximum


def clustered_features(num_ids=40, per_id=5, dim=32, noise=0.5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(num_ids, dim, generator=generator)
    ids = torch.arange(num_ids).repeat_interleave(per_id)
    features = prototypes[ids] + noise * torch.randn(len(ids), dim, generator=generator)
    return F.normalize(features, dim=1).double(), ids.numpy()


@pytest.mark.parametrize("k1, k2, far_pairs", [(30, 6, False), (8, 3, True)])
def test_sparse_jaccard_equals_dense_reference_on_200_points(k1, k2, far_pairs):
    features, _ = clustered_features()
    assert len(features) == 200
    expected = dense_jaccard(features.numpy(), k1=k1, k2=k2)
    stored = k_reciprocal_jaccard(features, k1=k1, k2=k2).tocoo()
    actual = np.ones((200, 200))  # absent pairs are at distance 1
    actual[stored.row, stored.col] = stored.data
    off_diagonal = ~np.eye(200, dtype=bool)
    far = expected >= 1 - 1e-9
    np.testing.assert_allclose(actual[off_diagonal & ~far], expected[off_diagonal & ~far], atol=1e-5)
    assert (actual[off_diagonal & far] == 1.0).all()
    assert (expected[off_diagonal] < 0.3).any() and (expected[off_diagonal] > 0.8).any()
    assert far[off_diagonal].any() == far_pairs  # with k1 8, pairs sharing no support are not stored


def test_sparse_jaccard_keeps_only_pairs_below_max_distance():
    features, _ = clustered_features()
    distance = k_reciprocal_jaccard(features, k1=30, k2=6, max_distance=0.5)
    assert distance.nnz and (distance.data < 0.5).all()
    assert distance.diagonal().sum() == 0


def test_knn_by_chunks_equals_full_sort():
    features, _ = clustered_features(num_ids=10, per_id=7)
    neighbours = k_nearest_neighbours(features, 5, chunk_size=16)
    full = torch.argsort(features @ features.t(), dim=1, descending=True)[:, :5].numpy()
    assert np.array_equal(neighbours, full)


def test_well_separated_identities_are_recovered():
    features, ids = clustered_features(num_ids=30, per_id=6, noise=0.2)
    result = cluster_features(features, image_ids=np.arange(len(ids)), eps=0.6, min_samples=2, k1=8, k2=2)
    assert result.num_clusters == 30 and result.num_outliers == 0
    for identity in range(30):
        assert len(set(result.labels[ids == identity])) == 1


def test_dbscan_all_outliers_and_one_cluster():
    far = sparse.csr_matrix((4, 4))
    labels, num_clusters = dbscan_labels(far, eps=0.5, min_samples=2)
    assert num_clusters == 0 and labels.tolist() == [0, 1, 2, 3]  # every outlier its own class
    near = sparse.csr_matrix(np.full((4, 4), 0.1) - 0.1 * np.eye(4))
    labels, num_clusters = dbscan_labels(near, eps=0.5, min_samples=2)
    assert num_clusters == 1 and labels.tolist() == [0, 0, 0, 0]


def test_bad_clustering_parameters_name_the_key():
    with pytest.raises(ValueError, match="PS.OLA.CLUSTER.EPS"):
        dbscan_labels(sparse.csr_matrix((2, 2)), eps=0.0, min_samples=2)
    with pytest.raises(ValueError, match="PS.OLA.CLUSTER.BETA"):
        context_aware_clustering(torch.eye(2), sparse.csr_matrix((2, 2)), [0, 1], eps=0.5, min_samples=2, beta=1.5)


def look_alike_scene(generator):
    """Person A in images 0..5 (one box each) and, in image 0, a look-alike A' a little farther from
    every A than the A boxes are from one another."""
    prototype = F.normalize(torch.randn(16, generator=generator), dim=0)
    boxes = F.normalize(prototype + 0.02 * torch.randn(6, 16, generator=generator), dim=1)
    look_alike = F.normalize(prototype + 0.45 * F.normalize(torch.randn(16, generator=generator), dim=0), dim=0)
    features = torch.cat([boxes, look_alike[None]]).double()
    return features, np.array([0, 1, 2, 3, 4, 5, 0])


def cosine_distance_graph(features):
    distance = (1 - features @ features.t()).clamp(min=0).numpy()
    np.fill_diagonal(distance, 0)
    return sparse.csr_matrix(distance)


def test_cac_splits_a_cluster_holding_two_boxes_of_one_image_that_dbscan_keeps():
    features, image_ids = look_alike_scene(torch.Generator().manual_seed(0))
    distance = cosine_distance_graph(features)
    assert 0.03 < distance[6, 1:6].min() and distance[6, 1:6].max() < 0.2 - 0.03
    plain, _ = dbscan_labels(distance, eps=0.2, min_samples=2)
    assert len(set(plain.tolist())) == 1  # DBSCAN keeps A and A' of image 0 together
    result = context_aware_clustering(features, distance, image_ids, eps=0.2, min_samples=2, beta=0.2)
    assert result.num_clusters == 1 and result.num_outliers == 1
    assert len(set(result.labels[:6].tolist())) == 1 and result.labels[6] != result.labels[0]


def test_cac_with_beta_zero_only_sets_same_image_pairs_apart():
    features, image_ids = look_alike_scene(torch.Generator().manual_seed(0))
    result = context_aware_clustering(features, cosine_distance_graph(features), image_ids, eps=0.2, min_samples=2, beta=0.0)
    assert result.num_clusters == 1 and result.num_outliers == 0  # A' still reaches A through images 1..5


def test_same_image_pairs_counts_boxes_of_one_image_in_one_cluster():
    labels = np.array([0, 0, 0, 1, 2, 2])
    images = np.array([7, 7, 7, 7, 8, 9])
    assert same_image_pairs(labels, images) == 3  # the three boxes of image 7 in cluster 0


def chain_distance(positions):
    """Sparse |x_i - x_j| between points on a line (pairs below 1 stored)."""
    x = np.asarray(positions, dtype=float)
    distance = np.abs(x[:, None] - x[None, :])
    distance[distance >= 1] = 0
    return sparse.csr_matrix(distance)


def labels_at(distance, *eps_values):
    return [dbscan_labels(distance, eps, min_samples=2)[0] for eps in eps_values]


def test_reliability_rejects_a_point_that_joins_only_at_a_looser_eps():
    # points 0-2 at spacing 0.1; point 3 0.18 beyond point 2: a neighbour at eps 0.2 and 0.22, not at 0.15
    tight, normal, loose = labels_at(chain_distance([0.0, 0.1, 0.2, 0.38]), 0.15, 0.2, 0.25)
    assert len(set(normal.tolist())) == 1 and tight[3] != tight[2]
    # R_comp: 1 - 3/4 for points 0-2, 1 - 1/4 for point 3; R_indep 0 for all: point 3 fails compactness
    result = reliable_clusters(tight, normal, loose)
    assert result.independence_threshold == 0.0 and result.num_clusters == 1 and result.num_outliers == 1
    assert len(set(result.labels[:3].tolist())) == 1 and result.labels[3] == 1


def test_reliability_dissolves_the_cluster_that_grows_at_the_loosest_eps():
    # 20 tight pairs far apart, and pair 20, which a lone point joins at eps 0.25 (not at 0.2)
    positions = [10.0 * i + offset for i in range(21) for offset in (0.0, 0.1)] + [200.1 + 0.23]
    tight, normal, loose = labels_at(chain_distance(positions), 0.15, 0.2, 0.25)
    assert normal[40] == normal[41] != normal[42] and loose[42] == loose[41]
    # R_indep of pair 20: 1 - 2/3; of the other 20 pairs: 0 = the 90 % quantile of the 21 clusters
    result = reliable_clusters(tight, normal, loose)
    assert result.independence_threshold == 0.0 and result.num_clusters == 20 and result.num_outliers == 3
    np.testing.assert_array_equal(result.labels[:40], np.repeat(np.arange(20), 2))
    # a fixed threshold (OLA's code keeps the first epoch's) above 2/3 keeps pair 20
    assert reliable_clusters(tight, normal, loose, independence_threshold=0.7).num_clusters == 21


@pytest.mark.parametrize("context", [False, True])
def test_reliable_clusters_are_subsets_of_the_single_eps_clusters(context):
    features, ids = clustered_features(num_ids=20, per_id=4)
    images = np.arange(len(ids))
    single = cluster_features(features, images, eps=0.6, min_samples=2, k1=8, k2=2, context=context)
    reliable = cluster_features(features, images, eps=0.6, min_samples=2, k1=8, k2=2, context=context,
                                reliability_delta=0.02)
    assert single.independence_threshold is None and reliable.independence_threshold is not None
    clustered = reliable.labels < reliable.num_clusters
    # the reliable clusters are subsets of the single-eps ones
    for label in range(reliable.num_clusters):
        assert len(set(single.labels[reliable.labels == label].tolist())) == 1
    assert clustered.sum() <= (single.labels < single.num_clusters).sum()
