import math

import numpy as np
import pytest

from lifelong.pruning.semdedup import (
    PruneConfig,
    keep_counts,
    max_sim_table,
    max_sim_to_earlier,
    prune_by_count,
    prune_by_epsilon,
    semdedup,
)

S = 1 / math.sqrt(2)


def unit(*v):
    v = np.array(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def hand_pool():
    """Cluster 0 (centroid e1): p0 = e1 (distance 0), p1 = (e1 + e2)/sqrt2 (0.293),
    p2 = e2 and its exact copy p3 (distance 1). Cluster 1 (centroid e3): p4 = e3,
    p5 = e3 slightly tilted towards e1 (cos 0.99995), p6 = e2 (distance 1)."""
    x = np.stack([unit(1, 0, 0), unit(1, 1, 0), unit(0, 1, 0), unit(0, 1, 0),
                  unit(0, 0, 1), unit(0.01, 0, 1), unit(0, 1, 0)])
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    centroids = np.stack([unit(1, 0, 0), unit(0, 0, 1)])
    return x, labels, centroids


@pytest.mark.parametrize("max_block_elems", [1, 3, 2**20])
def test_max_sim_to_earlier_by_hand(max_block_elems):
    x = np.stack([unit(1, 0), unit(0, 1), unit(1, 0), unit(1, 1)])
    ms, arg = max_sim_to_earlier(x, max_block_elems)
    # row 0: none; row 1: cos(e2, e1) = 0; row 2: copy of row 0 -> 1;
    # row 3: 0.707 to rows 0, 1, 2 -> first maximum, row 0
    np.testing.assert_allclose(ms, [-np.inf, 0.0, 1.0, S], atol=1e-6)
    assert arg.tolist() == [-1, 0, 0, 0]


def test_table_far_first_by_hand():
    x, labels, cents = hand_pool()
    t = max_sim_table(x, labels, cents, PruneConfig(order="far_first"))
    # cluster 0 far-first order: p2, p3 (distance 1, by index), p1, p0
    # cluster 1: p6 (distance 1), p5 (1 - 0.99995), p4 (0)
    assert t.index.tolist() == [2, 3, 1, 0, 6, 5, 4]
    assert t.cluster.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert t.position.tolist() == [0, 1, 2, 3, 0, 1, 2]
    cos54 = float(unit(0.01, 0, 1) @ unit(0, 0, 1))
    np.testing.assert_allclose(t.max_sim, [-np.inf, 1.0, S, S, -np.inf, 0.0, cos54], atol=1e-6)
    assert t.duplicate_of.tolist() == [-1, 2, 2, 1, -1, 6, 5]


def test_table_near_first_by_hand():
    x, labels, cents = hand_pool()
    t = max_sim_table(x, labels, cents, PruneConfig(order="near_first"))
    assert t.index.tolist() == [0, 1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(t.max_sim[:4], [-np.inf, S, S, 1.0], atol=1e-6)
    assert t.duplicate_of[:4].tolist() == [-1, 0, 1, 2]


def test_count_mode_removes_duplicates_first():
    x, labels, cents = hand_pool()
    t = max_sim_table(x, labels, cents, PruneConfig())
    # keep 3 of cluster 0: the exact copy p3 goes; keep 2 of cluster 1: the near copy p4
    r = prune_by_count(t, np.array([3, 2]))
    assert r.index.tolist() == [3, 4] and r.cluster.tolist() == [0, 1]
    assert r.duplicate_of.tolist() == [2, 5] and r.reason == "semdedup_count"
    # keep 2 of cluster 0: p3 (1.0), then p1 and p0 tie at 0.707 -> the later position (p0)
    assert prune_by_count(t, np.array([2, 3])).index.tolist() == [0, 3]
    # keep 1: only the first in order (p2) survives; keep 0 removes it too
    assert prune_by_count(t, np.array([1, 3])).index.tolist() == [0, 1, 3]
    assert prune_by_count(t, np.array([0, 3])).index.tolist() == [0, 1, 2, 3]


def test_epsilon_mode():
    x, labels, cents = hand_pool()
    t = max_sim_table(x, labels, cents, PruneConfig())
    assert prune_by_epsilon(t, 0.05).index.tolist() == [3, 4]  # 1.0 and 0.99995 > 0.95
    assert prune_by_epsilon(t, 0.3).index.tolist() == [0, 1, 3, 4]  # + 0.707 > 0.7
    r = semdedup(x, labels, cents, PruneConfig(mode="epsilon", epsilon=0.05))
    assert r.index.tolist() == [3, 4] and r.reason == "semdedup_epsilon"


def test_semdedup_count_meets_cap_and_is_block_size_free():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    copies = rng.choice(300, 20, replace=False)
    x = np.concatenate([base, base[copies]])  # 20 planted exact duplicates: rows 300..319
    labels = np.argmax(np.abs(x[:, :4]), axis=1)  # 4 clusters; copies share their original's cluster
    cents = np.stack([x[labels == k].mean(0) for k in range(4)])
    sizes = np.bincount(labels, minlength=4)
    dups_per_cluster = np.bincount(labels[300:], minlength=4)

    # per-cluster keep = size - its duplicates -> exactly one member of every planted pair goes
    t = max_sim_table(x, labels, cents, PruneConfig())
    r = prune_by_count(t, sizes - dups_per_cluster)
    pair_of = {int(c): 300 + i for i, c in enumerate(copies)}
    removed = set(r.index.tolist())
    assert len(removed) == 20
    assert all((orig in removed) != (dup in removed) for orig, dup in pair_of.items())
    np.testing.assert_allclose(r.max_sim, 1.0, atol=1e-5)

    tiny = max_sim_table(x, labels, cents, PruneConfig(max_block_elems=50))
    np.testing.assert_allclose(tiny.max_sim, t.max_sim, atol=1e-6)
    assert np.array_equal(tiny.index, t.index)

    cap = 250
    r = semdedup(x, labels, cents, PruneConfig(cap=cap))
    assert len(r.index) == len(x) - cap
    assert np.array_equal(np.bincount(r.cluster, minlength=4), sizes - keep_counts(labels, 4, cap))
    # every cluster removes more than its planted copies, and copies (max-sim 1) go first,
    # so every planted pair loses its later member (the copy: same distance, higher index)
    assert ((sizes - keep_counts(labels, 4, cap)) > dups_per_cluster).all()
    assert set(range(300, 320)) <= set(r.index.tolist())


def test_no_cap_or_under_cap_removes_nothing():
    x, labels, cents = hand_pool()
    assert len(semdedup(x, labels, cents, PruneConfig(cap=None)).index) == 0
    assert len(semdedup(x, labels, cents, PruneConfig(cap=7)).index) == 0
    assert len(semdedup(x, labels, cents, PruneConfig(cap=5)).index) == 2
