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
    inp.datasets = [f"old{i % 2}" if i < N - NEW else "new" for i in range(N)]
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


def _changed(cfg: SelectConfig, field: str) -> SelectConfig:
    """``cfg`` with select setting ``field`` moved away from its value (one that changes what Adapt-inf picks)."""
    import dataclasses

    other = {"budget": BudgetConfig(fraction=0.5), "cluster": ClusterConfig(k=2, seed=5),
             "route": dataclasses.replace(cfg.route, mode="random"), "ccs": dataclasses.replace(cfg.ccs, seed=9),
             "route_experts": ["el2n"], "sampling": "hardest", "seed": 7, "new_floor": 2.0,
             "replay_floor": 1.0, "size_power": 1.0}
    return dataclasses.replace(cfg, **{field: other[field]})


@pytest.mark.parametrize("name", [*STRATEGIES, *SINGLE])
def test_a_strategy_selects_the_same_whatever_it_declares_unread(name):
    """select_reads is what keeps a baseline's results fresh when Adapt-inf's settings change
    (eval/compare.py's digest leaves the rest out), so it must be true: every other setting
    leaves the selection as it is, and each one it reads can change it."""
    import dataclasses

    strat = get_strategy(name)
    inp = lambda: _input(provenance=strat.reads_provenance)  # noqa: E731
    base = strat.fn(inp(), _cfg()).indices
    fields = [f.name for f in dataclasses.fields(SelectConfig) if f.name != "strategy"]
    reads = fields if strat.select_reads is None else strat.select_reads
    assert set(reads) <= set(fields)
    for field in fields:
        same = np.array_equal(base, strat.fn(inp(), _changed(_cfg(), field)).indices)
        if field not in reads:
            assert same, f"{name} changed its selection with select.{field}, which it declares unread"
    for field in ("budget", "seed"):  # what the uniform baselines and the oracle draw with
        if strat.select_reads is not None and field in reads and name not in SINGLE:
            assert not np.array_equal(base, strat.fn(inp(), _changed(_cfg(), field)).indices), field
