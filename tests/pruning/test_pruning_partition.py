import numpy as np
import pytest

from lifelong.pruning.partition import PruneClusterConfig, partition


def blobs(n, dim=16, topics=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics, dim)).astype(np.float32)
    x = centres[rng.integers(0, topics, n)] + 0.3 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_split_has_n_over_cluster_size_clusters_and_bounded_sizes():
    x = blobs(5000)
    res = partition(x, PruneClusterConfig(cluster_size=200, max_size_factor=2.0))
    sizes = np.bincount(res.labels)
    assert sizes.sum() == 5000 and (sizes > 0).all() and sizes.max() <= 400
    assert res.k >= 25


def test_tree_leaves_are_at_most_cluster_size_and_cover_every_row():
    x = blobs(5000)
    res = partition(x, PruneClusterConfig(cluster_size=200, branching=4))
    sizes = np.bincount(res.labels)
    assert sizes.sum() == 5000 and (sizes > 0).all() and sizes.max() <= 200
    assert res.k == len(sizes) >= 5000 // 200
    # a leaf's centroid is the normalised mean of its rows
    k = int(np.argmax(sizes))
    mean = x[res.labels == k].mean(0)
    np.testing.assert_allclose(res.centroids[k], mean / np.linalg.norm(mean), atol=1e-5)
    # seeded: the same partition again
    assert np.array_equal(partition(x, PruneClusterConfig(cluster_size=200, branching=4)).labels, res.labels)


def test_cluster_count_grows_with_n_so_blocks_stay_small():
    cfg = PruneClusterConfig(cluster_size=100, max_size_factor=2.0)
    small, big = partition(blobs(1000), cfg), partition(blobs(4000), cfg)
    # the max-sim table costs sum(n_k^2): linear in N when the clusters keep their size
    cost = lambda r: float((np.bincount(r.labels).astype(float) ** 2).sum())  # noqa: E731
    assert cost(big) / cost(small) < 4 * 1.5
    assert big.k >= 4000 // 100 and np.bincount(big.labels).max() <= 200


def test_small_pool_is_one_leaf_and_identical_rows_do_not_recurse_forever():
    x = blobs(50)
    assert partition(x, PruneClusterConfig(cluster_size=64)).k == 1
    same = np.tile(x[:1], (300, 1))
    res = partition(same, PruneClusterConfig(cluster_size=10, branching=4))
    assert np.bincount(res.labels).sum() == 300


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="branching"):
        PruneClusterConfig(branching=1)
    with pytest.raises(ValueError, match="max_size_factor"):
        PruneClusterConfig(max_size_factor=0.5)
