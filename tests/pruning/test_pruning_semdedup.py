import math

import numpy as np
import pytest

from lifelong.pruning.semdedup import (
    PruneConfig,
    max_sim_table,
    max_sim_to_earlier,
    prune_by_count,
    prune_by_epsilon,
    semdedup,
    sweep,
    top_sims_to_earlier,
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


def reference_semdedup(x, labels, cents, tau, order="far_first"):
    """SemDeDup at tau written as the plain sequential loop: set of removed indices."""
    removed = set()
    for k in range(len(cents)):
        members = np.flatnonzero(labels == k)
        c = cents[k] / np.linalg.norm(cents[k])
        dist = 1.0 - x[members] @ c
        members = members[np.argsort(-dist if order == "far_first" else dist, kind="stable")]
        kept = []
        for i in members:
            if kept and max(float(x[i] @ x[j]) for j in kept) > tau:
                removed.add(int(i))
            else:
                kept.append(i)
    return removed


def planted_pool(n_base=600, n_copies=60, groups=(), dim=24, clusters=6, noise=0.05, seed=0):
    """Unequal topic clusters, planted near-copies (cos ~0.999) and optional groups of
    many copies of one row: (x, labels, centroids, pairs (P, 2) [original, copy])."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((clusters, dim)).astype(np.float32)
    weights = np.arange(1, clusters + 1) / np.arange(1, clusters + 1).sum()  # unequal sizes
    lab = rng.choice(clusters, n_base, p=weights)
    x = topics[lab] + rng.standard_normal((n_base, dim)).astype(np.float32)
    originals = rng.choice(n_base, n_copies, replace=False)
    rows, pairs = [x], []
    for i, o in enumerate(originals):
        pairs.append((o, n_base + i))
    rows.append(x[originals] + noise * rng.standard_normal((n_copies, dim)).astype(np.float32) / math.sqrt(dim))
    n = n_base + n_copies
    for g, size in enumerate(groups):
        src = rng.integers(n_base)
        rows.append(x[[src] * size] + 1e-3 * rng.standard_normal((size, dim)).astype(np.float32))
        n += size
    x = np.concatenate(rows).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.argmax(x @ (topics / np.linalg.norm(topics, axis=1, keepdims=True)).T, axis=1)
    cents = np.stack([x[labels == k].mean(0) for k in range(clusters)])
    return x, labels, cents, np.array(pairs)


@pytest.mark.parametrize("max_block_elems", [1, 3, 2**20])
def test_top_sims_to_earlier_by_hand(max_block_elems):
    x = np.stack([unit(1, 0), unit(0, 1), unit(1, 0), unit(1, 1)])
    sims, rows = top_sims_to_earlier(x, 2, max_block_elems)
    # row 1: only row 0 (cos 0); row 2: row 0 (1.0) then row 1 (0);
    # row 3: 0.707 to rows 0, 1, 2 -> two of the tie, the earlier one first
    np.testing.assert_allclose(sims, [[-np.inf, -np.inf], [0, -np.inf], [1, 0], [S, S]], atol=1e-6)
    assert rows[:3].tolist() == [[-1, -1], [0, -1], [0, 1]]
    assert rows[3, 0] < rows[3, 1] and set(rows[3]) <= {0, 1, 2}
    ms, arg = max_sim_to_earlier(x, max_block_elems)
    np.testing.assert_allclose(ms, [-np.inf, 0.0, 1.0, S], atol=1e-6)
    assert arg[:3].tolist() == [-1, 0, 0] and arg[3] in (0, 1, 2)


def test_table_far_first_by_hand():
    x, labels, cents = hand_pool()
    t = max_sim_table(x, labels, cents, PruneConfig(order="far_first", neighbours=3))
    # cluster 0 far-first order: p2, p3 (distance 1, by index), p1, p0 -> table rows 0..3
    # cluster 1: p6 (distance 1), p5 (1 - 0.99995), p4 (0) -> table rows 4..6
    assert t.index.tolist() == [2, 3, 1, 0, 6, 5, 4]
    assert t.cluster.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert t.position.tolist() == [0, 1, 2, 3, 0, 1, 2]
    cos54 = float(unit(0.01, 0, 1) @ unit(0, 0, 1))
    np.testing.assert_allclose(t.max_sim, [-np.inf, 1.0, S, S, -np.inf, 0.0, cos54], atol=1e-6)
    assert t.neighbours.tolist() == [[-1, -1, -1], [0, -1, -1], [0, 1, -1], [2, 0, 1],
                                     [-1, -1, -1], [4, -1, -1], [5, 4, -1]]


def test_table_near_first_by_hand():
    x, labels, cents = hand_pool()
    t = max_sim_table(x, labels, cents, PruneConfig(order="near_first"))
    assert t.index.tolist() == [0, 1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(t.max_sim[:4], [-np.inf, S, S, 1.0], atol=1e-6)
    assert t.neighbours[:4, 0].tolist() == [-1, 0, 1, 2]


def test_epsilon_mode_compares_with_kept_samples_only():
    x, labels, cents = hand_pool()
    t = max_sim_table(x, labels, cents, PruneConfig())
    r = prune_by_epsilon(t, 0.05)
    assert r.index.tolist() == [3, 4] and r.duplicate_of.tolist() == [2, 5]
    assert r.reason.tolist() == ["semdedup_epsilon"] * 2
    # tau = 0.7: p3 (1.0 to p2) and p1 (0.707 to p2) go; p0's only earlier sample above
    # 0.7 is p1, which is removed, so p0 stays (similarity to ANY earlier would drop it)
    assert prune_by_epsilon(t, 0.3).index.tolist() == [1, 3, 4]
    assert semdedup(x, labels, cents, PruneConfig(mode="epsilon", epsilon=0.05)).index.tolist() == [3, 4]


def test_chain_keeps_the_end_whose_only_near_copy_is_removed():
    # a, b, c at 0, 15, 30 degrees: b ~ a and c ~ b at cos 0.966, c ~ a at 0.866
    x = np.stack([unit(math.cos(math.radians(d)), math.sin(math.radians(d))) for d in (0, 15, 30)])
    labels, cents = np.zeros(3, int), unit(1, 0)[None]
    cfg = PruneConfig(order="near_first")
    assert semdedup(x, labels, cents, PruneConfig(mode="epsilon", order="near_first")).index.tolist() == [1]
    r = semdedup(x, labels, cents, PruneConfig(cap=2, order="near_first"))
    assert r.index.tolist() == [1] and r.reason.tolist() == ["semdedup_duplicate"] and r.duplicate_of.tolist() == [0]
    # cap 1: no redundancy left after b, so the cluster is thinned: c goes, a (b's reference) stays
    r = semdedup(x, labels, cents, PruneConfig(cap=1, order=cfg.order))
    assert r.index.tolist() == [1, 2] and r.reason.tolist() == ["semdedup_duplicate", "semdedup_thin"]


@pytest.mark.parametrize("neighbours", [1, 2, 8])
@pytest.mark.parametrize("tau", [0.95, 0.9, 0.6])
def test_sweep_equals_the_sequential_loop(neighbours, tau):
    x, labels, cents, _ = planted_pool(n_base=300, n_copies=40, groups=(12, 5), seed=1)
    t = max_sim_table(x, labels, cents, PruneConfig(neighbours=neighbours, max_block_elems=4000))
    removed, ref = sweep(t, tau, x)
    assert set(t.index[removed].tolist()) == reference_semdedup(x, labels, cents, tau)
    # every removed row has a kept reference above tau, in its cluster
    assert (ref[removed] >= 0).all() and not removed[ref[removed]].any()
    assert (t.cluster[ref[removed]] == t.cluster[removed]).all()
    assert (np.einsum("ij,ij->i", x[t.index[removed]], x[t.index[ref[removed]]]) > tau).all()


def test_count_mode_removes_planted_copies_first_in_unequal_clusters():
    x, labels, cents, pairs = planted_pool(n_base=2000, n_copies=100, clusters=12, seed=2)
    sizes = np.bincount(labels)
    assert sizes.max() > 4 * sizes.min()  # water-filled keep counts would thin the big clusters
    cap = len(x) - len(pairs)
    r = semdedup(x, labels, cents, PruneConfig(cap=cap))
    removed = set(r.index.tolist())
    assert len(removed) == len(pairs)
    assert all((o in removed) != (c in removed) for o, c in pairs)  # one member of every pair, never both
    assert (r.reason == "semdedup_duplicate").all() and (r.max_sim > 0.99).all()
    # the ledger's max_sim is the similarity to the kept duplicate it names
    np.testing.assert_allclose(r.max_sim, np.einsum("ij,ij->i", x[r.index], x[r.duplicate_of]), atol=1e-5)


def test_count_mode_threshold_step_too_coarse_takes_one_of_a_tie():
    # two exact copies (max-sim 1.0 each, in different clusters) and a 0.97 near copy
    x = np.stack([unit(1, 0, 0, 0), unit(1, 0, 0, 0), unit(0, 1, 0, 0), unit(0, 1, 0, 0),
                  unit(0, 0, 1, 0), unit(0, 0.25, 1, 0), unit(0, 0, 0, 1)])
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    cents = np.stack([unit(1, 0, 0, 0), unit(0, 1, 0, 0), unit(0, 0, 1, 0)])
    r = semdedup(x, labels, cents, PruneConfig(cap=6))
    assert len(r.index) == 1 and r.index[0] in (1, 3) and r.reason.tolist() == ["semdedup_duplicate"]
    r = semdedup(x, labels, cents, PruneConfig(cap=4))
    # all three redundant rows: 1.0, 1.0 and of the 0.97 pair the one nearer its centroid (far_first)
    assert sorted(r.index.tolist()) == [1, 3, 4]


def test_count_mode_thins_clusters_only_when_no_redundancy_is_left():
    x, labels, cents = hand_pool()
    # cap 5: the two redundant samples (p3 = p2, p4 ~ p5) and nothing else
    r = semdedup(x, labels, cents, PruneConfig(cap=5))
    assert r.index.tolist() == [3, 4] and r.duplicate_of.tolist() == [2, 5]
    # cap 4: one more; the kept 3 + 2 are water-filled to 2 + 2, so cluster 0 loses one:
    # p1 and p0 both have 0.707 to an earlier kept sample -> the later one, p0, goes
    r = semdedup(x, labels, cents, PruneConfig(cap=4))
    assert r.index.tolist() == [0, 3, 4]
    assert r.reason.tolist() == ["semdedup_thin", "semdedup_duplicate", "semdedup_duplicate"]
    assert r.duplicate_of[0] == 1 and r.max_sim[0] == pytest.approx(S, abs=1e-6)
    # cap 2: 1 + 1 kept; references of removed copies (p2 for p3, p5 for p4) are the ones left
    r = semdedup(x, labels, cents, PruneConfig(cap=2))
    assert r.index.tolist() == [0, 1, 3, 4, 6]


def test_no_cap_or_under_cap_removes_nothing():
    x, labels, cents = hand_pool()
    assert len(semdedup(x, labels, cents, PruneConfig(cap=None)).index) == 0
    assert len(semdedup(x, labels, cents, PruneConfig(cap=7)).index) == 0
    assert len(semdedup(x, labels, cents, PruneConfig(cap=5)).index) == 2


def test_large_copy_groups_beyond_the_neighbour_list():
    x, labels, cents, pairs = planted_pool(n_base=200, n_copies=10, groups=(15,), seed=3)
    for m in (2, 8):
        # a row and its 15 copies: 15 of them go, plus one of each of the 10 pairs
        cfg = PruneConfig(cap=len(x) - 10 - 15, neighbours=m)
        r = semdedup(x, labels, cents, cfg)
        assert (r.reason == "semdedup_duplicate").all() and (r.max_sim > 0.99).all()
        assert set(r.index.tolist()) == reference_semdedup(x, labels, cents, 0.99)
