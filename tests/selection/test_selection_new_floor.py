"""select.new_floor: the dataset that arrived this round gets at least its proportional share.

Adapt-∞ splits the budget equally over clusters; a new dataset whose samples all
fall in one of K clusters gets about 1/K of it. With the floor it gets at least
``ceil(new_floor * budget * n_new / n)``, and the budget is still met exactly.
"""
import numpy as np
import pytest

from lifelong.selection.budget import BudgetConfig
from lifelong.selection.cluster import ClusterConfig
from lifelong.selection.strategies import SelectConfig, SelectionInput, get_strategy, new_floor_count

OLD_GROUPS, PER_OLD, NEW = 7, 60, 100  # 7 old skills of 60 samples, one new dataset of 100, all apart
N = OLD_GROUPS * PER_OLD + NEW  # 520
BUDGET = 130  # 25%


def _input(n_new: int = NEW) -> SelectionInput:
    rng = np.random.default_rng(3)
    group = np.concatenate([np.repeat(np.arange(OLD_GROUPS), PER_OLD), np.full(n_new, OLD_GROUPS)])
    x = np.eye(16)[group] + 0.03 * rng.standard_normal((group.size, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    scores = {e: rng.random(group.size) for e in ["ppl", "el2n", "entropy", "grand", "ig", "random"]}
    return SelectionInput([f"s{i}" for i in range(group.size)], group == OLD_GROUPS, x.astype(np.float16), scores)


def _cfg(floor: float) -> SelectConfig:
    return SelectConfig(budget=BudgetConfig(fraction=0.25), cluster=ClusterConfig(k=8), new_floor=floor)


def _new_taken(name: str, floor: float, inp: SelectionInput | None = None) -> tuple[int, int]:
    inp = inp or _input()
    idx = get_strategy(name).fn(inp, _cfg(floor)).indices
    assert np.all(np.diff(idx) > 0)  # sorted, no sample twice
    return int(inp.is_new[idx].sum()), idx.size


def test_without_the_floor_a_one_cluster_dataset_gets_one_kth_of_the_budget():
    new, total = _new_taken("adapt_inf", 0.0)
    assert total == BUDGET
    assert new in (16, 17)  # 130 water-filled over 8 equal-enough clusters: 16 or 17 each


@pytest.mark.parametrize("name", ["adapt_inf", "random", "ppl"])
def test_with_the_floor_the_new_dataset_gets_its_proportional_share(name):
    floor = int(np.ceil(BUDGET * NEW / N))  # 25
    assert new_floor_count(_input(), _cfg(1.0), BUDGET) == floor
    new, total = _new_taken(name, 1.0)
    assert total == BUDGET and new >= floor
    new2, total2 = _new_taken(name, 2.0)
    assert total2 == BUDGET and new2 >= 2 * floor


def test_the_floor_is_capped_by_the_new_dataset_and_the_budget():
    small = _input(n_new=10)
    assert new_floor_count(small, _cfg(50.0), BUDGET) == 10
    new, total = _new_taken("adapt_inf", 50.0, small)
    assert (new, total) == (10, _new_taken("adapt_inf", 0.0, small)[1])  # all 10, and the same budget
    assert new_floor_count(small, _cfg(0.0), BUDGET) == 0
    only_new = SelectionInput(small.ids, np.ones(len(small.ids), bool), small.sketches, small.scores)
    assert new_floor_count(only_new, _cfg(1.0), BUDGET) == 0  # round 1: everything is new


def test_floor_zero_is_the_plain_draw():
    inp = _input()
    idx = get_strategy("random").fn(inp, _cfg(0.0)).indices
    expected = np.sort(np.random.default_rng(0).choice(N, size=BUDGET, replace=False))
    assert np.array_equal(idx, expected)


def test_strategies_without_a_budget_ignore_it():
    inp = _input()
    assert np.array_equal(get_strategy("sequential").fn(inp, _cfg(1.0)).indices, np.flatnonzero(inp.is_new))
    assert get_strategy("full").fn(inp, _cfg(1.0)).indices.size == N


def test_a_negative_floor_is_refused():
    with pytest.raises(ValueError, match="new_floor"):
        SelectConfig(new_floor=-0.5)
