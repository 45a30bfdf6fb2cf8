"""Routing entropy on tiny examples whose histograms are worked out by hand.

Default bins: 50 bins of width 8/50 = 0.16 on [-4, 4]; bin = floor((z + 4) / 0.16).
"""
import math

import numpy as np
import pytest

from lifelong.selection.route import RouteConfig, histogram_entropy, route

CFG = RouteConfig()


def test_four_distinct_scores_fill_four_bins():
    # mean 2.5, std sqrt(1.25) = 1.118; z = -1.342, -0.447, 0.447, 1.342
    # bins 16, 22, 27, 33 -> p = 1/4 each -> H = 2 bits
    assert histogram_entropy(np.array([1.0, 2.0, 3.0, 4.0]), CFG) == pytest.approx(2.0)


def test_three_equal_one_apart():
    # [0, 0, 0, 1]: mean 0.25, std 0.433; z = -0.577 (x3), 1.732 -> p = 3/4, 1/4
    expected = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))  # 0.8113
    assert histogram_entropy(np.array([0.0, 0.0, 0.0, 1.0]), CFG) == pytest.approx(expected)


def test_z_outside_range_falls_in_no_bin():
    # 25 zeros and one 1: mean 1/26, std 5/26; z = -0.2 (x25) and 5.0 (out of [-4, 4])
    # -> the only counted bin holds 25 -> p = 1 -> H = 0
    assert histogram_entropy(np.array([0.0] * 25 + [1.0]), CFG) == 0.0


def test_constant_and_single_sample_have_zero_entropy():
    assert histogram_entropy(np.full(7, 3.5), CFG) == 0.0
    assert histogram_entropy(np.array([42.0]), CFG) == 0.0


def test_nan_is_missing():
    assert histogram_entropy(np.array([1.0, np.nan, 2.0, 3.0, 4.0]), CFG) == pytest.approx(2.0)
    assert histogram_entropy(np.array([np.nan, np.nan]), CFG) == -math.inf
    assert histogram_entropy(np.array([]), CFG) == -math.inf


def test_default_bins_are_scale_free_reference_bins_are_not():
    # reference: edges linspace(-4 std, 4 std, 51). For [10, 20, 30, 40], std 11.18,
    # width 1.789, z = -1.342, -0.447, 0.447, 1.342 land in bins 24, 24, 25, 25 -> H = 1.
    # For [1, 2, 3, 4], std 1.118, width 0.1789: bins 17, 22, 27, 32 -> H = 2.
    ref = RouteConfig(reference_bins=True)
    big, small = np.array([10.0, 20, 30, 40]), np.array([1.0, 2, 3, 4])
    assert histogram_entropy(big, CFG) == pytest.approx(2.0)
    assert histogram_entropy(small, CFG) == pytest.approx(2.0)
    assert histogram_entropy(big, ref) == pytest.approx(1.0)
    assert histogram_entropy(small, ref) == pytest.approx(2.0)
    assert histogram_entropy(np.full(3, 2.0), ref) == 0.0


def test_route_picks_max_entropy_per_cluster_first_on_ties():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])
    scores = {
        # cluster 0: H = 1 (two bins); cluster 1: H = 2; cluster 2: single -> 0
        "a": np.array([0, 0, 1, 1, 1, 2, 3, 4, 5.0]),
        # cluster 0: H = 2; cluster 1: constant -> 0; cluster 2: NaN -> -inf
        "b": np.array([1, 2, 3, 4, 7, 7, 7, 7, np.nan]),
        # cluster 0: same histogram as b (tie, b is earlier); cluster 1: H = 0.8113
        "c": np.array([10, 20, 30, 40, 0, 0, 0, 1, 9.0]),
    }
    res = route(labels, scores, n_clusters=4, cfg=CFG)
    h3 = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    expected = np.array([[1.0, 2.0, 2.0], [2.0, 0.0, h3], [0.0, -math.inf, 0.0],
                         [-math.inf, -math.inf, -math.inf]])
    np.testing.assert_allclose(res.entropy, expected)
    # cluster 0: b ties c -> b; cluster 1: a; cluster 2: a ties c -> a; empty cluster 3 -> expert 0
    assert res.chosen.tolist() == [1, 0, 0, 0]
    assert res.chosen_names() == ["b", "a", "a", "a"]


def test_route_rejects_misshaped_scores():
    with pytest.raises(ValueError):
        route(np.zeros(3, dtype=int), {"a": np.zeros(4)}, 1, CFG)
