"""Selection strategies: Adapt-∞ and the baselines share one code path.

A strategy maps a ``SelectionInput`` (the active pool in a fixed order, which
samples are new this round, and — when it declares it needs them — the scoring
pass) to a ``Selection``. Adding one is one function plus one ``@strategy``
line; every registered strategy runs through the contract test.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lifelong.selection.budget import BudgetConfig, resolve_budget, water_fill
from lifelong.selection.ccs import CCSConfig, select_per_cluster
from lifelong.selection.cluster import ClusterConfig, cluster
from lifelong.selection.experts import EXPERTS
from lifelong.selection.route import RouteConfig, route


@dataclass
class SelectConfig:
    """The selection stage.

    strategy: a name from ``STRATEGIES`` (adapt_inf, random, full, sequential,
        multitask, or an expert name for single-expert CCS).
    budget: samples per round (count or fraction of the active pool).
    route_experts: experts that compete for each cluster. ``random`` is never a
        candidate: its flat histogram has maximal entropy by construction.
    seed: draws of the random baseline; CCS and clustering have their own seeds.
    """

    strategy: str = "adapt_inf"
    budget: BudgetConfig = field(default_factory=lambda: BudgetConfig(fraction=0.25))
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    route: RouteConfig = field(default_factory=RouteConfig)
    ccs: CCSConfig = field(default_factory=CCSConfig)
    route_experts: list[str] = field(default_factory=lambda: ["ppl", "el2n", "entropy", "grand", "ig", "clip"])
    seed: int = 0


@dataclass
class SelectionInput:
    ids: list[str]  # the active pool, fixed order
    is_new: np.ndarray  # (N,) bool: arrived this round
    sketches: np.ndarray | None = None  # (N, d) fp16 unit rows
    scores: dict[str, np.ndarray] | None = None  # expert -> (N,)

    @classmethod
    def from_pool(cls, pool, new_dataset: str | None) -> "SelectionInput":
        """The pool's active samples in its fixed order, those of ``new_dataset`` marked as new."""
        ids = pool.ids()
        new = set(pool.ids(dataset=new_dataset)) if new_dataset else set()
        return cls(ids, np.array([i in new for i in ids], dtype=bool))

    def add_scores(self, store) -> None:
        """Sketches and expert scores from an opened score store (memmaps, read by column and row
        range) whose rows are this input's samples, in order."""
        if store.ids != self.ids:
            raise ValueError("the scored samples are not the active pool")
        self.sketches, self.scores = store.sketches, store.scores


@dataclass
class Selection:
    """Indices into ``SelectionInput.ids`` and, when clustering ran, why."""

    indices: np.ndarray  # (B,) int64, sorted
    labels: np.ndarray | None = None  # (N,) cluster per sample
    centroids: np.ndarray | None = None  # (K, d)
    experts: list[str] = field(default_factory=list)  # routed expert per cluster
    entropy: np.ndarray | None = None  # (K, E) bits
    entropy_experts: list[str] = field(default_factory=list)
    shares: np.ndarray | None = None  # (K,)


@dataclass(frozen=True)
class Strategy:
    """A selection strategy and what its scoring pass must compute.

    needs_scores: whether the round runs a scoring pass at all; sketches:
    whether it needs gradient sketches (clustering); experts: the experts it
    reads (None = every configured one). The pass computes no more than this.
    trains_at_end: the strategy trains once, jointly, after the last arrival
    (the multitask reference); the rounds before it skip scoring, selection,
    training and evaluation.
    """

    name: str
    fn: Callable[[SelectionInput, SelectConfig], Selection]
    needs_scores: bool
    doc: str
    sketches: bool = False
    experts: tuple[str, ...] | None = None
    trains_at_end: bool = False

    def score_config(self, cfg):
        """The run's ScoreConfig cut down to the experts this strategy reads."""
        import dataclasses

        return cfg if self.experts is None else dataclasses.replace(cfg, experts=list(self.experts))


STRATEGIES: dict[str, Strategy] = {}


def strategy(name: str, needs_scores: bool = False, sketches: bool = False, trains_at_end: bool = False):
    def deco(fn):
        STRATEGIES[name] = Strategy(name, fn, needs_scores, (fn.__doc__ or "").strip(), sketches=sketches,
                                    trains_at_end=trains_at_end)
        return fn

    return deco


def get_strategy(name: str) -> Strategy:
    if name in STRATEGIES:
        return STRATEGIES[name]
    if name in EXPERTS:
        return Strategy(name, lambda inp, cfg: single_expert(inp, cfg, name), True,
                        f"CCS over the whole pool with the {name!r} expert", sketches=False, experts=(name,))
    raise ValueError(f"unknown strategy {name!r}; known: {sorted(STRATEGIES)} or an expert {sorted(EXPERTS)}")


@strategy("adapt_inf", needs_scores=True, sketches=True)
def adapt_inf(inp: SelectionInput, cfg: SelectConfig) -> Selection:
    """Pseudo-skill clusters on sketches, max-entropy expert per cluster, water-filled CCS."""
    res = cluster(inp.sketches, cfg.cluster)
    candidates = {e: inp.scores[e] for e in cfg.route_experts if e in inp.scores and e != "random"}
    if not candidates:
        raise ValueError(f"none of route_experts {cfg.route_experts} was scored (have {sorted(inp.scores)})")
    routed = route(res.labels, candidates, res.k, cfg.route)
    sizes = np.bincount(res.labels, minlength=res.k)
    shares = water_fill(sizes, resolve_budget(len(inp.ids), cfg.budget))
    idx = select_per_cluster(res.labels, candidates, routed.chosen, shares, cfg.ccs)
    return Selection(idx, res.labels, res.centroids, routed.chosen_names(), routed.entropy, routed.experts, shares)


def single_expert(inp: SelectionInput, cfg: SelectConfig, name: str) -> Selection:
    """CCS with one fixed expert over the whole pool (one stratum set, no clusters)."""
    n = len(inp.ids)
    labels = np.zeros(n, dtype=np.int64)
    budget = resolve_budget(n, cfg.budget)
    idx = select_per_cluster(labels, {name: inp.scores[name]}, np.zeros(1, np.int64), np.array([budget]), cfg.ccs)
    return Selection(idx, labels, None, [name], None, [name], np.array([budget]))


@strategy("random")
def random_baseline(inp: SelectionInput, cfg: SelectConfig) -> Selection:
    """Uniform draw of the same budget (seeded)."""
    n = len(inp.ids)
    rng = np.random.default_rng(cfg.seed)
    return Selection(np.sort(rng.choice(n, size=resolve_budget(n, cfg.budget), replace=False)).astype(np.int64))


@strategy("full")
def full(inp: SelectionInput, cfg: SelectConfig) -> Selection:
    """Every active sample."""
    return Selection(np.arange(len(inp.ids), dtype=np.int64))


@strategy("sequential")
def sequential(inp: SelectionInput, cfg: SelectConfig) -> Selection:
    """Only the dataset that arrived this round (plain sequential fine-tuning)."""
    return Selection(np.flatnonzero(inp.is_new).astype(np.int64))


@strategy("multitask", trains_at_end=True)
def multitask(inp: SelectionInput, cfg: SelectConfig) -> Selection:
    """The joint upper reference: the loop trains once on everything after the last arrival."""
    return Selection(np.arange(len(inp.ids), dtype=np.int64))
