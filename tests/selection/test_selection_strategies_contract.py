"""Every registered strategy (and the single-expert ones) keeps the selection contract."""
import numpy as np
import pytest

from lifelong.selection.budget import BudgetConfig
from lifelong.selection.cluster import ClusterConfig
from lifelong.selection.experts import EXPERTS
from lifelong.selection.strategies import STRATEGIES, SelectConfig, SelectionInput, get_strategy

N, NEW = 240, 60
SINGLE = ["ppl", "el2n", "entropy", "grand"]


def _input(seed: int = 0, provenance: bool = False) -> SelectionInput:
    """Three well-separated groups of sketches; every expert scored; the last 60 samples are new.
    With ``provenance`` (what the select stage gives a strategy that reads it): three tasks, no defects."""
    rng = np.random.default_rng(seed)
    centres = np.eye(16)[:3]
    sketches = centres[np.arange(N) % 3] + 0.05 * rng.standard_normal((N, 16))
    sketches /= np.linalg.norm(sketches, axis=1, keepdims=True)
    scores = {e: rng.random(N) for e in ["ppl", "el2n", "entropy", "grand", "ig", "random"]}
    inp = SelectionInput([f"s{i}" for i in range(N)], np.arange(N) >= N - NEW, sketches.astype(np.float16), scores)
    if provenance:
        inp.tasks = [f"t{i % 3}" for i in range(N)]
        inp.provenance = [{"stream": "messy", "defect": None, "group": None} for _ in range(N)]
    return inp


def _cfg(seed: int = 0) -> SelectConfig:
    cfg = SelectConfig(budget=BudgetConfig(fraction=0.25), cluster=ClusterConfig(k=3))
    cfg.seed = cfg.cluster.seed = cfg.ccs.seed = seed
    return cfg


@pytest.mark.parametrize("name", [*STRATEGIES, *SINGLE])
def test_strategy_contract(name):
    strat = get_strategy(name)
    assert strat.name == name and strat.doc
    assert not strat.sketches or strat.needs_scores  # sketches come from the scoring pass
    assert strat.experts is None or set(strat.experts) <= set(EXPERTS)
    inp = _input(provenance=strat.reads_provenance)
    sel = strat.fn(inp, _cfg())
    idx = sel.indices
    assert idx.dtype == np.int64 and idx.ndim == 1
    assert np.all(np.diff(idx) > 0) and (idx.size == 0 or (idx[0] >= 0 and idx[-1] < N))  # sorted, unique, in range
    again = strat.fn(_input(provenance=strat.reads_provenance), _cfg())
    assert np.array_equal(idx, again.indices)  # a pure function of input and config
    expected = {"full": N, "multitask": N, "sequential": NEW}.get(name, N // 4)
    assert idx.size == expected
    if name == "sequential":
        assert np.array_equal(idx, np.arange(N - NEW, N))
    if sel.labels is not None:
        assert sel.labels.shape == (N,)
        if sel.shares is not None:
            assert int(np.sum(sel.shares)) == idx.size  # cluster shares add up to the budget
    if name in ("random", "random_prune", "oracle", "adapt_inf", *SINGLE):
        other = strat.fn(_input(provenance=strat.reads_provenance), _cfg(seed=1))
        assert not np.array_equal(idx, other.indices)  # the seed is what draws


def test_only_multitask_trains_at_the_end():
    assert [n for n, s in STRATEGIES.items() if s.trains_at_end] == ["multitask"]
    assert get_strategy("adapt_inf").needs_scores and get_strategy("adapt_inf").sketches
