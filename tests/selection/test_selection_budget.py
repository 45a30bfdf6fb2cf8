import numpy as np
import pytest

from lifelong.selection.budget import BudgetConfig, resolve_budget, water_fill


@pytest.mark.parametrize(
    "sizes, total, expected",
    [
        ([2, 10, 10], 14, [2, 6, 6]),  # share 4: cluster 0 whole, 12 over two -> 6, 6
        ([10, 10, 10], 14, [5, 5, 4]),  # share 4, 2 left: equal sizes -> lowest index first
        ([5, 8, 9], 20, [5, 7, 8]),  # share 6: 5 whole; 15 over two -> 7 each, 1 left -> largest (9)
        ([3, 7, 9], 17, [3, 7, 7]),  # share 5: 3 whole; share 7: 7 whole; 7 left for 9
        ([9, 3, 9], 10, [4, 3, 3]),  # share 3: 3 whole; 7 over [9, 9] -> 3 each, 1 -> index 0
        ([2, 3], 100, [2, 3]),  # budget larger than the pool -> everything
        ([0, 4, 1], 3, [0, 2, 1]),  # empty cluster gets 0
        ([4, 4], 0, [0, 0]),
        ([], 5, []),
    ],
)
def test_water_fill_hand_cases(sizes, total, expected):
    assert water_fill(sizes, total).tolist() == expected


def test_water_fill_exact_total_random():
    rng = np.random.default_rng(0)
    for _ in range(500):
        sizes = rng.integers(0, 50, size=rng.integers(1, 12))
        total = int(rng.integers(0, 600))
        shares = water_fill(sizes, total)
        assert shares.sum() == min(total, sizes.sum())
        assert (shares <= sizes).all() and (shares >= 0).all()
        # water-filling: a cluster not taken whole gets at least as much as any other cluster
        partial = shares < sizes
        if partial.any():
            assert shares[partial].min() >= shares.max() - 1


def test_water_fill_rejects_bad_input():
    with pytest.raises(ValueError):
        water_fill([3, -1], 2)
    with pytest.raises(ValueError):
        water_fill([3], -1)


def test_resolve_budget():
    assert resolve_budget(1000, BudgetConfig(count=50, fraction=None)) == 50
    assert resolve_budget(30, BudgetConfig(count=50, fraction=None)) == 30
    assert resolve_budget(100, BudgetConfig(fraction=0.29)) == 29  # 0.29 * 100 = 28.999999999999996
    assert resolve_budget(7, BudgetConfig(fraction=0.5)) == 3
    with pytest.raises(ValueError):
        resolve_budget(10, BudgetConfig(count=3, fraction=0.1))
    with pytest.raises(ValueError):
        resolve_budget(10, BudgetConfig(count=None, fraction=None))


@pytest.mark.parametrize(
    "sizes, total, power, expected",
    [
        ([10, 30, 60], 50, 1.0, [5, 15, 30]),  # in proportion to the sizes, exactly
        ([10, 20], 7, 1.0, [2, 5]),  # 2.33, 4.67 -> 2, 4; the one left to the larger fraction
        ([4, 16, 64], 14, 0.5, [2, 4, 8]),  # weights 2, 4, 8 of 14
        # weights 1, 4, 8: 14/13 >= 1 -> cluster 0 whole; 13 over 4, 8 -> 4.33, 8.67 -> 4, 8, +1 to 8.67
        ([1, 16, 64], 14, 0.5, [1, 4, 9]),
        ([60, 30, 10], 20, 0.0, [7, 7, 6]),  # 6.67 each, 2 left to the largest clusters
        ([60, 30, 10], 20, 0.5, [9, 7, 4]),  # 9.46, 6.69, 3.86 -> 9, 6, 3; 2 left: 0.86 then 0.69
        ([60, 30, 10], 20, 1.0, [12, 6, 2]),
        ([0, 5, 20], 10, 1.0, [0, 2, 8]),
    ],
)
def test_water_fill_by_a_power_of_the_sizes(sizes, total, power, expected):
    assert water_fill(sizes, total, power).tolist() == expected


def test_water_fill_power_moves_the_budget_toward_large_clusters():
    rng = np.random.default_rng(1)
    for _ in range(300):
        sizes = rng.integers(1, 80, size=rng.integers(2, 10))
        total = int(rng.integers(0, sizes.sum() + 1))
        by = [water_fill(sizes, total, p) for p in (0.0, 0.5, 1.0)]
        for shares in by:
            assert shares.sum() == total and (shares <= sizes).all()
        big = int(np.argmax(sizes))
        assert by[0][big] <= by[1][big] + 1 and by[1][big] <= by[2][big] + 1
        # power 1 never needs a cap below the total: each share within 1 of size x total / sum
        assert np.abs(by[2] - sizes * total / sizes.sum()).max() < 1


def test_water_fill_rejects_a_power_outside_0_1():
    with pytest.raises(ValueError, match="power"):
        water_fill([3, 4], 2, 1.5)
    with pytest.raises(ValueError, match="power"):
        water_fill([3, 4], 2, -0.1)
