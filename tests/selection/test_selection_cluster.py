import numpy as np

from lifelong.selection.cluster import ClusterConfig, assign, cluster, silhouette_cosine


def blobs(n_per, k, d, noise, seed):
    """k well-separated directions on the unit sphere with n_per noisy unit points each."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat(np.arange(k), n_per)
    x = centres[truth] + noise * rng.normal(size=(k * n_per, d)) / np.sqrt(d)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float16), truth


def same_partition(a, b):
    """True when labelings a and b group the points identically (up to renaming)."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_fixed_k_recovers_blobs_and_is_seeded():
    x, truth = blobs(200, 5, 64, 0.3, seed=0)
    cfg = ClusterConfig(k=5, seed=3, nredo=5, max_train_points=500, chunk_rows=128)  # restarts avoid a merged-blob local minimum
    res = cluster(x, cfg)
    assert res.labels.shape == (1000,) and res.labels.dtype == np.int64
    assert res.centroids.shape == (5, 64)
    np.testing.assert_allclose(np.linalg.norm(res.centroids, axis=1), 1.0, rtol=1e-5)
    assert same_partition(res.labels, truth)
    again = cluster(x, cfg)
    assert np.array_equal(again.labels, res.labels) and np.array_equal(again.centroids, res.centroids)
    assert res.silhouette == {}


def test_auto_k_picks_true_k_by_silhouette():
    x, truth = blobs(150, 6, 32, 0.3, seed=1)
    res = cluster(x, ClusterConfig(k=None, k_range=[2, 4, 6, 9, 12], seed=0, nredo=5, silhouette_points=600))
    assert res.k == 6, res.silhouette
    assert max(res.silhouette, key=res.silhouette.get) == 6
    assert same_partition(res.labels, truth)


def test_k_larger_than_points_is_clamped():
    x, _ = blobs(2, 2, 8, 0.1, seed=2)
    res = cluster(x, ClusterConfig(k=10))
    assert res.k == 4 and len(res.labels) == 4


def test_silhouette_by_hand():
    # unit vectors on a circle: cluster A at angles 0 and 90 deg, cluster B at 180 deg.
    # cosine distances: d(a1, a2) = 1, d(a1, b) = 2, d(a2, b) = 1.
    # a1: a = 1, b = 2 -> s = 0.5; a2: a = 1, b = 1 -> s = 0; b: singleton -> 0. mean 1/6.
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    assert abs(silhouette_cosine(x, np.array([0, 0, 1])) - 1 / 6) < 1e-6


def test_assign_in_chunks_matches_argmax():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    c = rng.normal(size=(7, 16)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert np.array_equal(assign(x, c, chunk_rows=64), np.argmax(xn @ c.T, axis=1))


# ---- over-cluster and merge ----------------------------------------------------------------------
def test_merge_groups_is_average_linkage():
    """The merge equals scipy's average-linkage tree on cosine distance, cut to k groups."""
    from scipy.cluster.hierarchy import fcluster, linkage

    from lifelong.selection.cluster import merge_groups

    rng = np.random.default_rng(0)
    for m, k in [(12, 3), (32, 8), (20, 1), (5, 5)]:
        c = rng.normal(size=(m, 6))
        c /= np.linalg.norm(c, axis=1, keepdims=True)
        ours = merge_groups(c, k)
        theirs = fcluster(linkage(c, method="average", metric="cosine"), k, criterion="maxclust")
        assert same_partition(ours, theirs) and sorted(set(ours.tolist())) == list(range(k))
        assert ours[0] == 0  # groups numbered by their smallest member


def _head_and_tail(seed=0):
    """A large skill in three nearby directions (600 rows each) and a small distinct one (20 rows)."""
    rng = np.random.default_rng(seed)
    d = 32
    base = rng.normal(size=d)
    heads = [base + 0.5 * rng.normal(size=d) for _ in range(3)]
    tail = rng.normal(size=d)
    centres = np.stack(heads + [tail])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat([0, 1, 2, 3], [600, 600, 600, 20])
    x = centres[truth] + 0.4 * rng.normal(size=(len(truth), d)) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), truth


def test_merging_keeps_a_small_distinct_group_apart():
    x, truth = _head_and_tail()
    plain = cluster(x, ClusterConfig(k=2, seed=0))
    merged = cluster(x, ClusterConfig(k=2, merge_from=8, seed=0))
    head, tail = truth < 3, truth == 3
    # plain k-means spends both clusters on the large skill; the small one shares a cluster with it
    assert np.isin(plain.labels[tail], plain.labels[head]).all()
    # merged: the small skill is a group of its own and the large one is the other
    assert len(set(merged.labels[tail].tolist())) == 1 and len(set(merged.labels[head].tolist())) == 1
    assert merged.labels[tail][0] != merged.labels[head][0]
    assert merged.centroids.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(merged.centroids, axis=1), 1.0, rtol=1e-5)
    # auto K over the merged partitions: the silhouette sees the two groups (or the four directions)
    auto = cluster(x, ClusterConfig(k=None, k_range=[2, 4, 16], merge_from=8, seed=0))
    assert set(auto.silhouette) == {2, 4} and auto.k in (2, 4)
    assert len(set(auto.labels[tail].tolist())) == 1 and auto.labels[tail][0] not in set(auto.labels[head].tolist())


def test_merge_from_must_exceed_k():
    import pytest

    for bad in [dict(k=8, merge_from=8), dict(k=8, merge_from=4), dict(k=None, merge_from=1)]:
        with pytest.raises(ValueError):
            ClusterConfig(**bad)
    with pytest.raises(ValueError):
        ClusterConfig(features="tokens")


def test_embedding_features_are_centred_on_the_pool_mean():
    """features=embedding clusters the embeddings minus their mean over the pool: the same partition as
    k-means on the explicitly centred rows, and the blobs under a large shared direction."""
    from lifelong.selection.budget import BudgetConfig
    from lifelong.selection.cluster import column_mean
    from lifelong.selection.strategies import SelectConfig, SelectionInput, pseudo_skills

    x, truth = blobs(100, 3, 16, 0.3, seed=1)
    shared = np.zeros(16, np.float32)
    shared[0] = 20.0
    y = x.astype(np.float32) + shared
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    np.testing.assert_allclose(column_mean(y, chunk_rows=7), y.mean(0), rtol=1e-5, atol=1e-6)
    ccfg = ClusterConfig(k=3, seed=0, nredo=3, features="embedding")
    inp = SelectionInput([f"s{i}" for i in range(300)], np.zeros(300, bool), sketches=x)
    cfg = SelectConfig(budget=BudgetConfig(count=30, fraction=None), cluster=ccfg)
    import pytest

    with pytest.raises(ValueError, match="embedding"):
        pseudo_skills(inp, cfg)
    inp.embeddings = y.astype(np.float16)
    got = pseudo_skills(inp, cfg).labels
    centred = inp.embeddings.astype(np.float32) - inp.embeddings.astype(np.float32).mean(0)
    assert np.array_equal(got, cluster(centred, ccfg).labels) and same_partition(got, truth)
