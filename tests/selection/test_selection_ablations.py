"""The ablation options of selection (docs/design.md steps 3-6), with numbers worked out by hand."""
import numpy as np
import pytest

from lifelong.selection.budget import BudgetConfig
from lifelong.selection.ccs import (CCSConfig, ccs_sample, extreme_sample, select_per_cluster, tail_counts,
                                    uniform_sample)
from lifelong.selection.cluster import ClusterConfig, from_labels, random_partition
from lifelong.selection.route import RouteConfig, route
from lifelong.selection.strategies import SelectConfig, SelectionInput, adapt_inf, pseudo_skills


# ---- CCS hard cutoff -------------------------------------------------------------------------
def test_tail_counts_fixed_and_rate():
    assert tail_counts(20, 0.75, CCSConfig()) == (1, 1)  # floor(0.05 x 20) at each end, whatever alpha
    assert tail_counts(20, 0.10, CCSConfig()) == (1, 1)
    # rate: beta = 0.4 x 0.75 = 0.3 of the hardest; nothing at the easy end
    assert tail_counts(20, 0.75, CCSConfig(tail="rate", hard_slope=0.4)) == (0, 6)
    assert tail_counts(20, 0.25, CCSConfig(tail="rate", hard_slope=0.4)) == (0, 2)  # 0.1 x 20
    assert tail_counts(20, 0.0, CCSConfig(tail="rate", hard_slope=0.4)) == (0, 0)
    with pytest.raises(ValueError):
        CCSConfig(tail="both")
    with pytest.raises(ValueError):
        CCSConfig(tail="rate", hard_slope=1.0)


def test_rate_cutoff_drops_the_hardest_only():
    scores = np.arange(20.0)
    # fixed: 0 and 19 go; 1..18 in 18 strata of width 17/18, one value each; m = 5 over 18 strata of
    # size 1: quota R // S is 0 until the last 5 strata -> values 14..18.
    fixed = ccs_sample(scores, 5, CCSConfig(n_strata=18), np.random.default_rng(0))
    assert fixed.tolist() == [14, 15, 16, 17, 18]
    # rate (alpha = 15/20, beta = 0.4 x 0.75 = 0.3): 14..19 go, 0 stays; 0..13 in 14 strata of width
    # 13/14, one value each -> the last 5: 9..13.
    rate = ccs_sample(scores, 5, CCSConfig(n_strata=14, tail="rate", hard_slope=0.4), np.random.default_rng(0))
    assert rate.tolist() == [9, 10, 11, 12, 13]


def test_rate_cutoff_tops_up_from_the_least_hard_dropped():
    # n = 10 with 4 NaN: 6 finite (0..5); m = 7 -> alpha 0.3, hard_slope 0.5 -> floor(0.15 x 6) = 0 dropped
    # -> the 6 finite, then the first NaN.
    scores = np.array([0.0, 1, 2, 3, 4, 5, np.nan, np.nan, np.nan, np.nan])
    out = ccs_sample(scores, 7, CCSConfig(tail="rate", hard_slope=0.5), np.random.default_rng(0))
    assert out.tolist() == [0, 1, 2, 3, 4, 5, 6]
    # m = 2 of 10 finite 0..9: alpha 0.8, beta 0.4 -> 9..6 dropped; 0..5 in 2 strata of width 2.5:
    # {0, 1, 2} and {3, 4, 5}, one from each.
    out = ccs_sample(np.arange(10.0), 2, CCSConfig(n_strata=2, tail="rate", hard_slope=0.5), np.random.default_rng(1))
    assert sorted(np.isin(out, [0, 1, 2]).tolist()) == [False, True] and out.max() <= 5


# ---- within-cluster sampling ----------------------------------------------------------------------
def test_hardest_and_easiest_take_the_extremes():
    s = np.array([3.0, np.nan, 1.0, 5.0, 1.0])
    assert extreme_sample(s, 2, hardest=True).tolist() == [0, 3]  # 5, 3
    assert extreme_sample(s, 2, hardest=False).tolist() == [2, 4]  # 1, 1 (ties by index)
    assert extreme_sample(s, 4, hardest=False).tolist() == [0, 2, 3, 4]  # NaN last
    assert extreme_sample(s, 9, hardest=True).tolist() == [0, 1, 2, 3, 4]


def test_uniform_ignores_the_scores():
    a = uniform_sample(np.arange(30.0), 7, CCSConfig(), np.random.default_rng(3))
    b = uniform_sample(-np.arange(30.0) ** 2, 7, CCSConfig(), np.random.default_rng(3))
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 7


def test_select_per_cluster_with_each_sampling():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = {"ppl": np.array([1.0, 2, 3, 1, 2, 3])}
    shares, chosen = np.array([1, 2]), np.zeros(2, np.int64)
    assert select_per_cluster(labels, scores, chosen, shares, CCSConfig(), "hardest").tolist() == [2, 4, 5]
    assert select_per_cluster(labels, scores, chosen, shares, CCSConfig(), "easiest").tolist() == [0, 3, 4]
    assert len(select_per_cluster(labels, scores, chosen, shares, CCSConfig(), "uniform")) == 3
    with pytest.raises(ValueError):
        select_per_cluster(labels, scores, chosen, shares, CCSConfig(), "median")
    with pytest.raises(ValueError):
        SelectConfig(sampling="median")


# ---- routing ---------------------------------------------------------------------------------------
def test_route_modes():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    rng = np.random.default_rng(0)
    scores = {"ppl": rng.random(9), "el2n": rng.random(9), "ig": rng.random(9)}
    entropy = route(labels, scores, 3, RouteConfig())
    fixed = route(labels, scores, 3, RouteConfig(mode="fixed", expert="ig"))
    assert fixed.chosen.tolist() == [2, 2, 2] and fixed.chosen_names() == ["ig"] * 3
    drawn = route(labels, scores, 3, RouteConfig(mode="random"), rng=np.random.default_rng(5))
    assert drawn.chosen.tolist() == np.random.default_rng(5).integers(0, 3, size=3).tolist()
    # the entropy table is the same whatever the mode (it is reported)
    assert np.array_equal(entropy.entropy, fixed.entropy) and np.array_equal(entropy.entropy, drawn.entropy)
    with pytest.raises(ValueError):
        route(labels, scores, 3, RouteConfig(mode="fixed", expert="grand"))  # not a scored candidate
    with pytest.raises(ValueError):
        route(labels, scores, 3, RouteConfig(mode="random"))  # no generator
    with pytest.raises(ValueError):
        RouteConfig(mode="fixed")
    with pytest.raises(ValueError):
        RouteConfig(expert="ppl")


# ---- cluster source --------------------------------------------------------------------------------
def test_random_partition_deals_equal_clusters():
    labels = random_partition(10, 3, 7)
    perm = np.random.default_rng(7).permutation(10)
    assert labels[perm].tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    assert np.bincount(labels).tolist() == [4, 3, 3]
    assert random_partition(2, 8, 0).max() == 1  # K <= n


def test_from_labels_centroids_are_normalised_means():
    x = np.array([[1.0, 0], [0, 1], [0, 2]], dtype=np.float16)  # rows are normalised first
    res = from_labels(x, np.array([0, 0, 1]))
    assert res.k == 2 and res.labels.tolist() == [0, 0, 1]
    np.testing.assert_allclose(res.centroids, [[2 ** -0.5, 2 ** -0.5], [0, 1]], atol=1e-6)


def _input(n_big=8, n_small=2):
    rng = np.random.default_rng(0)
    n = n_big + n_small
    sk = rng.normal(size=(n, 4))
    inp = SelectionInput([f"s{i}" for i in range(n)], np.zeros(n, bool),
                         (sk / np.linalg.norm(sk, axis=1, keepdims=True)).astype(np.float16),
                         {"ppl": rng.random(n) + 1, "el2n": rng.random(n)})
    inp.datasets = ["big"] * n_big + ["small"] * n_small
    return inp


def test_dataset_source_gives_each_dataset_an_equal_share():
    inp = _input()
    cfg = SelectConfig(budget=BudgetConfig(count=4, fraction=None), cluster=ClusterConfig(source="dataset"))
    assert pseudo_skills(inp, cfg).labels.tolist() == [0] * 8 + [1] * 2  # "big" < "small"
    sel = adapt_inf(inp, cfg)
    # water-filled: 4 over sizes [8, 2] -> [2, 2]: both samples of the small dataset
    assert sel.shares.tolist() == [2, 2] and {8, 9} <= set(sel.indices.tolist())
    inp.datasets = None
    with pytest.raises(ValueError):
        adapt_inf(inp, cfg)


def test_random_source_needs_a_fixed_k_and_deals_k_clusters():
    with pytest.raises(ValueError):
        ClusterConfig(source="random", k=None)
    cfg = SelectConfig(budget=BudgetConfig(count=4, fraction=None), cluster=ClusterConfig(source="random", k=5), seed=3)
    res = pseudo_skills(_input(), cfg)
    assert np.bincount(res.labels).tolist() == [2] * 5
    assert res.labels.tolist() == random_partition(10, 5, [3, 2]).tolist()  # the select seed's partition stream


# ---- the expert lists ---------------------------------------------------------------------------------
def test_one_default_expert_list():
    from lifelong.selection.experts import DEFAULT_SCORED, EXPERTS, routable
    from lifelong.selection.score import ScoreConfig

    assert ScoreConfig().experts == list(DEFAULT_SCORED)
    assert SelectConfig().route_experts == routable() == [e for e in EXPERTS if e != "random"]
    assert set(DEFAULT_SCORED) - {"random"} <= set(routable())


# ---- the budget over clusters (select.size_power) ---------------------------------------------------
@pytest.mark.parametrize("power, expected", [(0.0, [7, 7, 6]), (0.5, [9, 7, 4]), (1.0, [12, 6, 2])])
def test_adapt_inf_splits_the_budget_by_a_power_of_cluster_size(power, expected):
    """Datasets of 60, 30 and 10 as the clusters (cluster.source=dataset), budget 20: equal shares
    give the 10-sample dataset 6 (60 % of itself), size ** 0.5 gives 4, size gives 2 (a uniform draw's)."""
    n, rng = 100, np.random.default_rng(0)
    datasets = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    sketches = rng.standard_normal((n, 8)).astype(np.float16)
    inp = SelectionInput([f"s{i}" for i in range(n)], np.zeros(n, dtype=bool), sketches,
                         {e: rng.random(n) for e in ("ppl", "el2n", "entropy", "grand")}, datasets=datasets)
    cfg = SelectConfig(budget=BudgetConfig(count=20, fraction=None), cluster=ClusterConfig(source="dataset"), size_power=power)
    sel = adapt_inf(inp, cfg)
    picked = np.asarray(datasets)[sel.indices]
    assert [int(np.sum(picked == d)) for d in "abc"] == expected
    assert sel.shares.tolist() == expected
    with pytest.raises(ValueError, match="size_power"):
        SelectConfig(size_power=2.0)
