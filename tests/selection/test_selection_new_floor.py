"""select.new_floor: the dataset that arrived this round gets at least its proportional share;
select.replay_floor: the same for every dataset that arrived before it.

Adapt-∞ splits the budget equally over clusters; a new dataset whose samples all
fall in one of K clusters gets about 1/K of it. With the floor it gets at least
``ceil(new_floor * budget * n_new / n)``, and the budget is still met exactly.
"""
import numpy as np
import pytest

from lifelong.selection.budget import BudgetConfig
from lifelong.selection.cluster import ClusterConfig
from lifelong.selection.floors import new_floor_count
from lifelong.selection.strategies import SelectConfig, SelectionInput, get_strategy

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


# ---- select.replay_floor: every dataset that arrived before this round ----------------------------------

def _with_datasets(sizes: dict[str, int], new: str) -> SelectionInput:
    """Datasets of the given sizes, each its own tight direction; ``new`` arrived this round."""
    rng = np.random.default_rng(5)
    names = [d for d, n in sizes.items() for _ in range(n)]
    group = np.unique(names, return_inverse=True)[1]
    x = np.eye(16)[group] + 0.03 * rng.standard_normal((group.size, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    scores = {e: rng.random(group.size) for e in ["ppl", "el2n", "entropy", "grand", "ig", "random"]}
    inp = SelectionInput([f"s{i}" for i in range(group.size)], np.array([d == new for d in names]),
                         x.astype(np.float16), scores)
    inp.datasets = names
    return inp


SIZES = {"a": 300, "b": 60, "c": 140, "d": 100}  # N = 600; d arrives; budget 150


def _taken(name: str, inp: SelectionInput, **select) -> dict[str, int]:
    cfg = SelectConfig(budget=BudgetConfig(count=150, fraction=None), cluster=ClusterConfig(k=8), **select)
    idx = get_strategy(name).fn(inp, cfg).indices
    assert idx.size == 150 and np.all(np.diff(idx) > 0)
    picked = np.asarray(inp.datasets)[idx]
    return {d: int(np.sum(picked == d)) for d in SIZES}


def test_the_replay_floor_counts_each_earlier_dataset_by_its_size():
    from lifelong.selection.floors import floor_counts

    inp = _with_datasets(SIZES, new="d")
    cfg = SelectConfig(replay_floor=0.5)
    # ceil(0.5 x 150 x n / 600): a 37.5 -> 38, b 7.5 -> 8, c 17.5 -> 18; d is new (no new_floor)
    counts = [(np.asarray(inp.datasets)[rows[0]], k) for rows, k in floor_counts(inp, cfg, 150)]
    assert counts == [("a", 38), ("b", 8), ("c", 18)]
    assert floor_counts(inp, SelectConfig(), 150) == []
    first = _with_datasets(SIZES, new="d")
    first.is_new[:] = True  # round 1: every sample is new, nothing to replay
    assert floor_counts(first, cfg, 150) == []
    again = _with_datasets(SIZES, new="none")  # a round without an arrival: every dataset is replayed
    assert [k for _, k in floor_counts(again, cfg, 150)] == [38, 8, 18, 13]  # d: ceil(12.5)


@pytest.mark.parametrize("name", ["adapt_inf", "random", "ppl"])
def test_with_the_replay_floor_every_earlier_dataset_gets_its_share(name):
    inp = _with_datasets(SIZES, new="d")
    if name == "adapt_inf":  # equal shares over 8 clusters give the largest dataset less than the floor asks
        assert _taken(name, inp)["a"] < 57
    got = _taken(name, inp, replay_floor=0.75, new_floor=1.0)
    # ceil(0.75 x 150 x n / 600): a 57, b 12, c 27; d (new): ceil(150 x 100 / 600) = 25
    assert got["a"] >= 57 and got["b"] >= 12 and got["c"] >= 27 and got["d"] >= 25


def test_both_floors_at_one_split_the_budget_over_datasets_as_a_uniform_draw_would():
    """Floors of 1 ask for ceil(150 x n / 600) each, 151 in all: cut to the budget, every dataset gets
    its proportional share within one sample, whatever the clusters would have given it."""
    inp = _with_datasets(SIZES, new="d")
    plain = _taken("adapt_inf", inp)
    assert plain["a"] < 75  # equal shares over clusters: the largest dataset gets well under its share
    got = _taken("adapt_inf", inp, replay_floor=1.0, new_floor=1.0)
    for d, n in SIZES.items():
        assert abs(got[d] - 150 * n / 600) <= 1, (d, got)


def test_the_replay_floor_needs_the_samples_datasets_and_refuses_a_negative_value():
    inp = _with_datasets(SIZES, new="d")
    inp.datasets = None
    with pytest.raises(ValueError, match="replay_floor needs each sample's dataset"):
        _taken("random", inp, replay_floor=0.5)
    with pytest.raises(ValueError, match="replay_floor"):
        SelectConfig(replay_floor=-1.0)
