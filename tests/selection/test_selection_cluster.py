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
