import numpy as np

from lifelong.selection.budget import water_fill
from lifelong.selection.ccs import CCSConfig, ccs_sample, select_per_cluster


def rng(seed=0):
    return np.random.default_rng(seed)


def test_two_strata_smaller_first():
    # no tails; strata of width 5 on [0, 10]: {0, 1, 2} -> stratum 0, {10, 10} -> stratum 1.
    # m = 3: stratum 1 (size 2) first, quota 3 // 2 = 1; then stratum 0 gets 2 // 1 = 2.
    cfg = CCSConfig(n_strata=2, tail_fraction=0.0)
    scores = np.array([0.0, 1.0, 2.0, 10.0, 10.0])
    for seed in range(20):
        out = ccs_sample(scores, 3, cfg, rng(seed))
        assert len(out) == 3
        assert np.isin(out, [0, 1, 2]).sum() == 2 and np.isin(out, [3, 4]).sum() == 1
    # m = 4: stratum 1 quota 4 // 2 = 2 (both), stratum 0 gets 2
    out = ccs_sample(scores, 4, cfg, rng())
    assert {3, 4} <= set(out.tolist()) and np.isin(out, [0, 1, 2]).sum() == 2


def test_unfilled_quota_passes_on():
    # strata (width 5 on [0, 10]): {0} and {6, 7, 8, 9, 10}; m = 4, quota 2 for the
    # singleton which can give only 1, the other stratum gets 3.
    cfg = CCSConfig(n_strata=2, tail_fraction=0.0)
    out = ccs_sample(np.array([0.0, 6, 7, 8, 9, 10]), 4, cfg, rng())
    assert 0 in out and len(out) == 4


def test_one_per_stratum_on_uniform_ranks():
    # scores 0..99, 5% tails drop 0..4 and 95..99; middle 5..94 (90 values) over 50 strata of
    # width 89/50 = 1.78: 10 strata hold 1 value, 40 hold 2. m = 50 -> quota 1 each -> one per stratum.
    scores = np.arange(100.0)
    out = ccs_sample(scores, 50, CCSConfig(), rng())
    assert len(out) == 50 and out.min() >= 5 and out.max() <= 94
    strata = np.minimum(((scores[out] - 5) / 89 * 50).astype(int), 49)
    assert sorted(strata.tolist()) == list(range(50))


def test_constant_score_cluster():
    # all ties: ranks are index order, tails are indices 0..4 and 95..99, middle one stratum
    out = ccs_sample(np.full(100, 1.0), 10, CCSConfig(), rng())
    assert len(out) == 10 and len(set(out.tolist())) == 10
    assert out.min() >= 5 and out.max() <= 94


def test_top_up_from_tails_least_extreme_first():
    cfg = CCSConfig(tail_fraction=0.2)  # n = 10 -> 2 dropped each side, middle = indices 2..7
    scores = np.arange(10.0)
    assert ccs_sample(scores, 8, cfg, rng()).tolist() == list(range(1, 9))  # + depth-1 ranks 1 and 8
    assert ccs_sample(scores, 7, cfg, rng()).tolist() == list(range(1, 8))  # low tail first
    assert ccs_sample(scores, 9, cfg, rng()).tolist() == list(range(0, 9))


def test_nan_scores_are_last_resort():
    cfg = CCSConfig(tail_fraction=0.2)
    scores = np.concatenate([[np.nan], np.arange(10.0), [np.nan]])  # finite values at indices 1..10
    # middle: values 2..7 (indices 3..8); m = 10 -> middle 6 + all 4 tail values, no NaN
    assert ccs_sample(scores, 10, cfg, rng()).tolist() == list(range(1, 11))
    # m = 11 -> one NaN sample, the lower index
    assert ccs_sample(scores, 11, cfg, rng()).tolist() == list(range(0, 11))
    # only NaN scores: the first m by index
    assert ccs_sample(np.full(5, np.nan), 2, cfg, rng()).tolist() == [0, 1]


def test_budget_larger_than_cluster_takes_all():
    assert ccs_sample(np.array([3.0, 1.0, np.nan]), 10, CCSConfig(), rng()).tolist() == [0, 1, 2]
    assert ccs_sample(np.array([3.0, 1.0]), 0, CCSConfig(), rng()).tolist() == []


def test_exact_total_many_random_cases():
    gen = np.random.default_rng(123)
    for case in range(400):
        n = int(gen.integers(1, 300))
        kind = case % 4
        if kind == 0:
            scores = gen.normal(size=n)
        elif kind == 1:
            scores = gen.integers(0, 3, size=n).astype(float)  # heavy ties
        elif kind == 2:
            scores = np.where(gen.random(n) < 0.3, np.nan, gen.exponential(size=n))
        else:
            scores = np.concatenate([gen.normal(size=n - 1), [1e6]])  # one far outlier
        m = int(gen.integers(0, n + 20))
        cfg = CCSConfig(n_strata=int(gen.integers(1, 60)), tail_fraction=float(gen.choice([0.0, 0.05, 0.2, 0.45])))
        out = ccs_sample(scores, m, cfg, rng(case))
        assert len(out) == min(m, n)
        assert len(np.unique(out)) == len(out)
        assert out.min(initial=0) >= 0 and out.max(initial=0) < n


def test_seeded_reproducible():
    scores = np.random.default_rng(5).normal(size=500)
    a = ccs_sample(scores, 60, CCSConfig(), rng(7))
    b = ccs_sample(scores, 60, CCSConfig(), rng(7))
    c = ccs_sample(scores, 60, CCSConfig(), rng(8))
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


def test_select_per_cluster_small_cluster_taken_whole():
    labels = np.array([0] * 2 + [1] * 10 + [2] * 10)
    scores = {"a": np.arange(22.0), "b": np.full(22, 1.0)}
    shares = water_fill(np.bincount(labels), 14)  # [2, 6, 6]
    out = select_per_cluster(labels, scores, np.array([0, 1, 0]), shares, CCSConfig())
    assert len(out) == 14
    assert {0, 1} <= set(out.tolist())
    assert np.bincount(labels[out], minlength=3).tolist() == [2, 6, 6]
    # budget larger than the pool -> everything
    everything = select_per_cluster(labels, scores, np.array([0, 1, 0]), water_fill([2, 10, 10], 99), CCSConfig())
    assert everything.tolist() == list(range(22))
