"""prune.mode quota: the cap water-filled over selection's clusters, the most redundant out in each
(docs/design.md step 8), on a hand-built pool."""
import numpy as np
import pytest

from lifelong.pruning.partition import selection_labels, selection_partition
from lifelong.pruning.semdedup import PruneConfig, semdedup


def unit(*v):
    v = np.array(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def hand_pool():
    """Cluster 0 (centroid e1): p0 = e1, p1 = (e1 + e2)/sqrt2, p2 = e2 and its exact copy p3.
    Cluster 1 (centroid e3): p4 = e3, p5 = e3 slightly tilted towards e1 (cos 0.99995), p6 = e2."""
    x = np.stack([unit(1, 0, 0), unit(1, 1, 0), unit(0, 1, 0), unit(0, 1, 0),
                  unit(0, 0, 1), unit(0.01, 0, 1), unit(0, 1, 0)])
    return x, np.array([0, 0, 0, 0, 1, 1, 1]), np.stack([unit(1, 0, 0), unit(0, 0, 1)])


def test_quota_keeps_an_equal_share_per_cluster_and_drops_the_most_redundant():
    x, labels, cents = hand_pool()
    # cap 4 over sizes [4, 3] -> keep [2, 2]: 2 out of cluster 0, 1 out of cluster 1.
    # Cluster 0 far first: p2, p3, p1, p0 with max-sim to an earlier sample -inf, 1, 1/sqrt2, 1/sqrt2:
    # p3 goes, then of the tie p1/p0 the later position (p0). Cluster 1 far first: p6, p5, p4 with
    # -inf, 0, 0.99995: p4 goes.
    res = semdedup(x, labels, cents, PruneConfig(cap=4, mode="quota"))
    assert res.index.tolist() == [0, 3, 4]
    assert res.reason.tolist() == ["semdedup_quota", "semdedup_duplicate", "semdedup_duplicate"]
    assert res.duplicate_of.tolist() == [1, 2, 5]
    np.testing.assert_allclose(res.max_sim, [2 ** -0.5, 1.0, 0.99995], atol=1e-4)
    # count mode at the same cap removes the 3 most redundant regardless of clusters (p3, p4, then p6 is
    # not a duplicate within its cluster: the next most similar kept sample).
    assert len(semdedup(x, labels, cents, PruneConfig(cap=4)).index) == 3


def test_quota_within_the_cap_or_without_one_removes_nothing():
    x, labels, cents = hand_pool()
    assert len(semdedup(x, labels, cents, PruneConfig(cap=7, mode="quota")).index) == 0
    assert len(semdedup(x, labels, cents, PruneConfig(cap=None, mode="quota")).index) == 0
    # cap 5 over [4, 3]: share 5 // 2 = 2, no cluster fits in it, the remainder 1 to the largest:
    # keep [3, 2] -> one out of each, the most redundant: p3 and p4.
    assert semdedup(x, labels, cents, PruneConfig(cap=5, mode="quota")).index.tolist() == [3, 4]
    with pytest.raises(ValueError):
        PruneConfig(mode="global")


def test_selection_labels_come_from_the_rounds_scores_table(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "scores.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c"], "selected": [True, False, True], "cluster": [2, 0, 2]}), path)
    assert selection_labels(path, ["c", "a", "b"]).tolist() == [2, 2, 0]
    x = np.array([[1.0, 0], [0, 1], [1, 0]], dtype=np.float32)
    part = selection_partition(x, path, ["a", "b", "c"])
    assert part.labels.tolist() == [2, 0, 2] and part.k == 3
    np.testing.assert_allclose(part.centroids, [[0, 1], [0, 0], [1, 0]], atol=1e-6)  # cluster 1 is empty
    with pytest.raises(ValueError, match="no cluster"):
        selection_labels(path, ["a", "z"])
    pq.write_table(pa.table({"id": ["a"], "selected": [True]}), path)  # a strategy that does not cluster
    with pytest.raises(ValueError, match="has none"):
        selection_labels(path, ["a"])
    with pytest.raises(ValueError, match="has none"):
        selection_labels(tmp_path / "absent.parquet", ["a"])
