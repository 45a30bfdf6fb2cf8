"""Experts are routed and stratified on their selection scale: perplexity in log.

Perplexities are heavy-tailed. On the raw scale CCS's equal-width strata put
the bulk of the pool in the lowest strata, and the draw comes mostly from the
hardest samples (in the demo's first round, 79% from the top 30%); the
reference code takes the log before routing and CCS.
"""
import numpy as np
import pytest

from lifelong.selection.budget import BudgetConfig
from lifelong.selection.cluster import ClusterConfig
from lifelong.selection.experts import EXPERTS, selection_scores
from lifelong.selection.route import RouteConfig, histogram_entropy
from lifelong.selection.strategies import SelectConfig, SelectionInput, get_strategy


def _lognormal_pool(n: int, seed: int = 0) -> SelectionInput:
    rng = np.random.default_rng(seed)
    ppl = np.exp(2.0 + 1.5 * rng.standard_normal(n))  # median e^2, a long upper tail
    sketches = rng.standard_normal((n, 8))
    sketches /= np.linalg.norm(sketches, axis=1, keepdims=True)
    scores = {"ppl": ppl, "el2n": rng.random(n), "random": rng.random(n)}
    return SelectionInput([f"s{i}" for i in range(n)], np.zeros(n, dtype=bool), sketches.astype(np.float16), scores)


def _deciles(x: np.ndarray) -> np.ndarray:
    ranks = np.argsort(np.argsort(x, kind="stable"), kind="stable")
    return ranks * 10 // x.size


def test_ppl_ccs_draws_as_evenly_from_the_easy_as_from_the_hard_end():
    inp = _lognormal_pool(2000)
    sel = get_strategy("ppl").fn(inp, SelectConfig(budget=BudgetConfig(fraction=0.25)))
    dec = _deciles(inp.scores["ppl"])[sel.indices]
    low, high = np.mean(dec <= 2), np.mean(dec >= 7)
    # log ppl is normal here, so the stratified draw is symmetric about the median;
    # on the raw scale the top three deciles took over 0.8 of it and the bottom three almost none.
    assert abs(high - low) < 0.08, (low, high)
    assert low > 0.2 and high > 0.2


def test_routing_sees_log_ppl():
    inp = _lognormal_pool(600, seed=1)
    cfg = SelectConfig(budget=BudgetConfig(fraction=0.25), cluster=ClusterConfig(k=2), route_experts=["ppl", "el2n"])
    sel = get_strategy("adapt_inf").fn(inp, cfg)
    ppl = inp.scores["ppl"]
    e = sel.entropy_experts.index("ppl")
    for k in range(2):
        members = ppl[sel.labels == k]
        assert sel.entropy[k, e] == pytest.approx(histogram_entropy(np.log(members), RouteConfig()))
        assert sel.entropy[k, e] > histogram_entropy(members, RouteConfig()) + 1.0  # raw would lose ~2 bits


def test_selection_scale_of_each_expert():
    assert EXPERTS["ppl"].scale == "log"
    assert {n for n, e in EXPERTS.items() if e.scale == "log"} == {"ppl"}
    x = np.array([1.0, np.e, np.e ** 2])
    assert np.allclose(selection_scores("ppl", x), [0.0, 1.0, 2.0])
    assert np.array_equal(selection_scores("el2n", x), x)
    with pytest.raises(ValueError, match="ppl.*<= 0"):
        selection_scores("ppl", np.array([2.0, 0.0]))
