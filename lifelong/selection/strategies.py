"""Selection strategies: Adapt-∞ and the baselines share one code path.

A strategy maps a ``SelectionInput`` (the active pool in a fixed order, which
samples are new this round, and — when it declares it needs them — the scoring
pass) to a ``Selection``. Adding one is one function plus one ``@strategy``
line; every registered strategy runs through the contract test.

Yardsticks (``oracle``) declare ``reads_provenance``: only they are given the
samples' task labels and provenance, whose defect flags a real selector cannot
know (tests/selection/test_selection_provenance.py holds every other strategy
to that).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lifelong.selection.budget import BudgetConfig, resolve_budget, water_fill
from lifelong.selection.ccs import SAMPLERS, CCSConfig, select_per_cluster
from lifelong.selection.cluster import ClusterConfig, ClusterResult, cluster, column_mean, from_labels, random_partition
from lifelong.selection.experts import EXPERTS, NEVER_ROUTED, routable, selection_scores
from lifelong.selection.floors import with_floor
from lifelong.selection.route import RouteConfig, route


@dataclass
class SelectConfig:
    """The selection stage.

    strategy: a name from ``STRATEGIES`` (adapt_inf, random, full, sequential,
        multitask, or an expert name for single-expert CCS).
    budget: samples per round (count or fraction of the active pool).
    route_experts: experts that compete for each cluster, in tie-break order
        (default: every registered one but ``random``, ``experts.routable``);
        only those the scoring pass computed take part. ``random`` is never a
        candidate: its flat histogram has maximal entropy by construction.
    sampling: how a cluster's share is drawn (``ccs.SAMPLERS``): ``ccs`` (the
        paper's coverage-centric sampling), or an ablation: ``uniform``,
        ``hardest`` / ``easiest`` (highest / lowest routed-expert scores).
    seed: draws of the random baseline; CCS and clustering have their own seeds.
    new_floor: the dataset that arrived this round gets at least this multiple
        of its proportional share of the budget (budget x new / pool, what a
        uniform draw gives it on average), drawn first by the strategy's own
        rule among the new samples; the rest of the budget is then drawn from
        everything not yet taken. 0 (default) = the paper's rule: Adapt-∞
        splits the budget equally over clusters, and a new dataset, whose
        untrained samples share one gradient direction, tends to fill one
        cluster and get 1/K of the budget. Applies to the budgeted strategies
        (adapt_inf, random, single experts); ``floors.with_floor``.
    replay_floor: the same for every dataset that arrived before this round
        (0, default: none): a guard against a round whose split over clusters
        starves an old skill. 1 with ``new_floor`` 1 splits the budget over
        datasets as a uniform draw would, and the strategy then chooses only
        within each dataset.
    size_power: how Adapt-∞ splits a round's budget over its clusters: shares in
        proportion to cluster size ** size_power, each at most its cluster
        (``budget.water_fill``). 0 (default) = the paper's equal shares, which
        give a skill as much as the number of clusters it falls into (a one-
        cluster skill 1/K of the budget, a tiny cluster of mislabelled samples
        nearly all of itself); 1 = in proportion to size, a uniform draw's
        split; 0.5 = to the square roots, in between.
    """

    strategy: str = "adapt_inf"
    budget: BudgetConfig = field(default_factory=lambda: BudgetConfig(fraction=0.25))
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    route: RouteConfig = field(default_factory=RouteConfig)
    ccs: CCSConfig = field(default_factory=CCSConfig)
    route_experts: list[str] = field(default_factory=routable)
    sampling: str = "ccs"
    seed: int = 0
    new_floor: float = 0.0
    replay_floor: float = 0.0
    size_power: float = 0.0

    def __post_init__(self):
        if not self.new_floor >= 0:
            raise ValueError(f"select.new_floor must be >= 0, got {self.new_floor}")
        if not self.replay_floor >= 0:
            raise ValueError(f"select.replay_floor must be >= 0, got {self.replay_floor}")
        if not 0.0 <= self.size_power <= 1.0:
            raise ValueError(f"select.size_power must be in [0, 1], got {self.size_power}")
        if self.sampling not in SAMPLERS:
            raise ValueError(f"select.sampling must be one of {sorted(SAMPLERS)}, got {self.sampling!r}")


@dataclass
class SelectionInput:
    ids: list[str]  # the active pool, fixed order
    is_new: np.ndarray  # (N,) bool: arrived this round
    sketches: np.ndarray | None = None  # (N, d) fp16 unit rows
    scores: dict[str, np.ndarray] | None = None  # expert -> (N,)
    # Training samples ingested so far, pruned ones included (None: none pruned); budget.of = seen.
    n_seen: int | None = None
    # Per sample (N,), for strategies that declare reads_provenance (yardsticks) only, else None.
    tasks: list[str] | None = None
    provenance: list[dict] | None = None
    # Per sample (N,): the dataset it arrived with (a user knows it; select.cluster.source = dataset).
    datasets: list[str] | None = None
    # (N, H) fp16 unit rows: mean-pooled hidden states, from the scoring pass (select.cluster.features).
    embeddings: np.ndarray | None = None

    @classmethod
    def from_pool(cls, pool, new_dataset: str | None, provenance: bool = False) -> "SelectionInput":
        """The pool's active samples in its fixed order, those of ``new_dataset`` marked as new, and
        the dataset of each; with ``provenance``, their task labels and provenance too."""
        ids = pool.ids()
        new = set(pool.ids(dataset=new_dataset)) if new_dataset else set()
        inp = cls(ids, np.array([i in new for i in ids], dtype=bool), n_seen=len(ids) + len(pool.ledger()))
        of = {i: d for d in pool.datasets(split="train") for i in pool.ids(dataset=d)}
        inp.datasets = [of[i] for i in ids]
        if provenance:
            samples = pool.get(ids)
            inp.tasks, inp.provenance = [s.task for s in samples], [s.provenance for s in samples]
        return inp

    def add_scores(self, store) -> None:
        """Sketches and expert scores from an opened score store (memmaps, read by column and row
        range) whose rows are this input's samples, in order."""
        if store.ids != self.ids:
            raise ValueError("the scored samples are not the active pool")
        self.sketches, self.scores, self.embeddings = store.sketches, store.scores, store.embeddings


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
    reads_provenance: the select stage gives it the samples' task labels and
    provenance (defect flags included): yardsticks only.
    eviction: the ``prune.mode`` its runs prune the pool with (None: the
    config's), for a baseline whose eviction is part of what it is.
    select_reads: the ``select`` settings its rule reads besides ``strategy``
    (None: all of them). What it does not read cannot change its runs, so an
    experiment's digest leaves it out (:meth:`unread`).
    """

    name: str
    fn: Callable[[SelectionInput, SelectConfig], Selection]
    needs_scores: bool
    doc: str
    sketches: bool = False
    experts: tuple[str, ...] | None = None
    trains_at_end: bool = False
    reads_provenance: bool = False
    eviction: str | None = None
    select_reads: tuple[str, ...] | None = None

    def unread(self, cfg) -> list[str]:
        """Dotted paths of run config ``cfg`` (a RunConfig using this strategy) that its runs
        never read: ``select`` settings outside ``select_reads``; ``score`` when no round
        scores and pruning needs no model embeddings; ``prune`` settings other than ``cap`` when
        nothing is pruned, and the ones uniform eviction ignores."""
        import dataclasses

        out = []
        if self.select_reads is not None:
            out += [f"select.{f.name}" for f in dataclasses.fields(cfg.select)
                    if f.name != "strategy" and f.name not in self.select_reads]
        prune = self.prune_config(cfg.prune)
        embeds = prune.cap is not None and prune.mode != "uniform" and prune.features == "hidden"
        if not self.needs_scores and not embeds:
            out.append("score")
        keep = {"cap"} if prune.cap is None else {"cap", "cluster"} if prune.mode == "uniform" else None
        if keep is not None:
            out += [f"prune.{f.name}" for f in dataclasses.fields(cfg.prune) if f.name not in keep]
        elif self.eviction is not None:
            out.append("prune.mode")  # replaced by the strategy's own
        return out

    def score_config(self, cfg):
        """The run's ScoreConfig cut down to the experts this strategy reads."""
        import dataclasses

        return cfg if self.experts is None else dataclasses.replace(cfg, experts=list(self.experts))

    def prune_config(self, cfg):
        """The run's PruneConfig with this strategy's eviction mode, if it has one."""
        import dataclasses

        return cfg if self.eviction is None else dataclasses.replace(cfg, mode=self.eviction)


STRATEGIES: dict[str, Strategy] = {}


def strategy(name: str, needs_scores: bool = False, sketches: bool = False, trains_at_end: bool = False,
             reads_provenance: bool = False, eviction: str | None = None,
             select_reads: tuple[str, ...] | None = None):
    def deco(fn):
        STRATEGIES[name] = Strategy(name, fn, needs_scores, (fn.__doc__ or "").strip(), sketches=sketches,
                                    trains_at_end=trains_at_end, reads_provenance=reads_provenance,
                                    eviction=eviction, select_reads=select_reads)
        return fn

    return deco


def get_strategy(name: str) -> Strategy:
    if name in STRATEGIES:
        return STRATEGIES[name]
    if name in EXPERTS:
        return Strategy(name, lambda inp, cfg: single_expert(inp, cfg, name), True,
                        f"CCS over the whole pool with the {name!r} expert", sketches=False, experts=(name,),
                        select_reads=("budget", "new_floor", "replay_floor", "ccs", "sampling"))
    raise ValueError(f"unknown strategy {name!r}; known: {sorted(STRATEGIES)} or an expert {sorted(EXPERTS)}")


def budget_of(inp: SelectionInput, cfg: SelectConfig) -> int:
    """This round's budget in samples (``SelectConfig.budget``)."""
    return resolve_budget(len(inp.ids), cfg.budget, inp.n_seen)


# Streams of the select seed besides the random baseline's: routing's draws (route.mode random)
# and the random partition (cluster.source random) must not reuse the baseline's numbers.
ROUTE_DRAWS, PARTITION_DRAWS = 1, 2


def pseudo_skills(inp: SelectionInput, cfg: SelectConfig) -> ClusterResult:
    """The clusters selection splits its budget over (``select.cluster.source``)."""
    source = cfg.cluster.source
    if source == "sketch":
        if cfg.cluster.features == "embedding":
            if inp.embeddings is None:
                raise ValueError("select.cluster.features=embedding needs the scoring pass's embeddings; the input has none")
            return cluster(inp.embeddings, cfg.cluster, center=column_mean(inp.embeddings))
        return cluster(inp.sketches, cfg.cluster)
    if source == "dataset":
        if inp.datasets is None:
            raise ValueError("select.cluster.source=dataset needs each sample's dataset; the input has none")
        return from_labels(inp.sketches, np.unique(np.asarray(inp.datasets), return_inverse=True)[1])
    return from_labels(inp.sketches, random_partition(len(inp.ids), cfg.cluster.k, [cfg.seed, PARTITION_DRAWS]))


@strategy("adapt_inf", needs_scores=True, sketches=True)
def adapt_inf(inp: SelectionInput, cfg: SelectConfig) -> Selection:
    """Pseudo-skill clusters on sketches, max-entropy expert per cluster, water-filled CCS
    (shares by ``size_power``)."""
    res = pseudo_skills(inp, cfg)
    candidates = {e: selection_scores(e, inp.scores[e])
                  for e in cfg.route_experts if e in inp.scores and e not in NEVER_ROUTED}
    if not candidates:
        raise ValueError(f"none of route_experts {cfg.route_experts} was scored (have {sorted(inp.scores)})")
    routed = route(res.labels, candidates, res.k, cfg.route, rng=np.random.default_rng([cfg.seed, ROUTE_DRAWS]))

    def pick(rows: np.ndarray, b: int):
        labels = res.labels[rows]
        shares = water_fill(np.bincount(labels, minlength=res.k), b, cfg.size_power)
        sub = {e: np.asarray(v)[rows] for e, v in candidates.items()}
        return rows[select_per_cluster(labels, sub, routed.chosen, shares, cfg.ccs, cfg.sampling)], shares

    idx, shares = with_floor(inp, cfg, budget_of(inp, cfg), pick)
    return Selection(idx, res.labels, res.centroids, routed.chosen_names(), routed.entropy, routed.experts, shares)


def single_expert(inp: SelectionInput, cfg: SelectConfig, name: str) -> Selection:
    """CCS with one fixed expert over the whole pool (one stratum set, no clusters)."""
    n = len(inp.ids)
    scores = selection_scores(name, inp.scores[name])

    def pick(rows: np.ndarray, b: int):
        one = np.zeros(rows.size, dtype=np.int64)
        picked = select_per_cluster(one, {name: scores[rows]}, np.zeros(1, np.int64), np.array([b]), cfg.ccs,
                                    cfg.sampling)
        return rows[picked], np.array([b])

    idx, shares = with_floor(inp, cfg, budget_of(inp, cfg), pick)
    return Selection(idx, np.zeros(n, dtype=np.int64), None, [name], None, [name], shares)


UNIFORM_READS = ("budget", "seed", "new_floor", "replay_floor")  # the uniform baselines' select settings


@strategy("random", select_reads=UNIFORM_READS)
def random_baseline(inp: SelectionInput, cfg: SelectConfig) -> Selection:
    """Uniform draw of the same budget (seeded)."""
    rng = np.random.default_rng(cfg.seed)

    def pick(rows: np.ndarray, b: int):
        return rng.choice(rows, size=b, replace=False), None

    idx, _ = with_floor(inp, cfg, budget_of(inp, cfg), pick)
    return Selection(idx)


@strategy("random_prune", eviction="uniform", select_reads=UNIFORM_READS)
def random_prune(inp: SelectionInput, cfg: SelectConfig) -> Selection:
    """Uniform draw of the same budget as ``random``, and uniform eviction down to the same pool cap."""
    return random_baseline(inp, cfg)


@strategy("oracle", reads_provenance=True, select_reads=("budget", "seed"))
def oracle(inp: SelectionInput, cfg: SelectConfig) -> Selection:
    """Yardstick that reads the defect flags: no flagged defect, one sample per copy group, an
    equal share of the budget per task (water-filled), a uniform draw inside a task.

    It selects fewer than the budget only when fewer clean samples are left;
    ``new_floor`` does not apply (its shares are per task by design).
    """
    if inp.tasks is None or inp.provenance is None:
        raise ValueError("the oracle reads the samples' task labels and provenance; the input has none")
    rows = np.flatnonzero(clean_representatives(inp.provenance))
    names, task = np.unique(np.asarray(inp.tasks)[rows], return_inverse=True)
    shares = water_fill(np.bincount(task, minlength=len(names)), budget_of(inp, cfg))
    rng = np.random.default_rng(cfg.seed)
    picked = [rng.choice(rows[task == k], size=int(b), replace=False) for k, b in enumerate(shares)]
    return Selection(np.sort(np.concatenate([np.zeros(0, np.int64), *picked])).astype(np.int64))


def clean_representatives(provenance: list[dict]) -> np.ndarray:
    """(N,) bool: samples the oracle may select. Any flagged defect but ``near_copy`` is out;
    of each copy group one sample stays: its first unflagged member, else its first member."""
    from lifelong.data.stream.defects import defect_of

    flags = [defect_of(p) for p in provenance]
    keep = np.array([kind in (None, "near_copy") for kind, _ in flags], dtype=bool)
    first: dict[str, int] = {}
    for i, (kind, group) in enumerate(flags):
        if group is None or not keep[i]:
            continue
        j = first.get(group)
        if j is None or (kind is None and flags[j][0] is not None):
            first[group] = i
    for i, (kind, group) in enumerate(flags):
        if group is not None and keep[i]:
            keep[i] = first[group] == i
    return keep


@strategy("full", select_reads=())
def full(inp: SelectionInput, cfg: SelectConfig) -> Selection:
    """Every active sample."""
    return Selection(np.arange(len(inp.ids), dtype=np.int64))


@strategy("sequential", select_reads=())
def sequential(inp: SelectionInput, cfg: SelectConfig) -> Selection:
    """Only the dataset that arrived this round (plain sequential fine-tuning)."""
    return Selection(np.flatnonzero(inp.is_new).astype(np.int64))


@strategy("multitask", trains_at_end=True, select_reads=())
def multitask(inp: SelectionInput, cfg: SelectConfig) -> Selection:
    """The joint upper reference: the loop trains once on everything after the last arrival."""
    return Selection(np.arange(len(inp.ids), dtype=np.int64))
