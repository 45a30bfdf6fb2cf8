"""Coverage-centric sampling (CCS) inside each cluster (docs/design.md step 6).

``ccs_sample`` draws exactly ``min(m, n)`` of a cluster's n samples using the
routed expert's scores:

1. NaN scores are missing: those samples are not stratified and are only used
   as the very last top-up (step 6), in index order.
2. The finite scores are ranked (stable: ties by index) and tails are dropped
   (:func:`tail_counts`). ``tail: fixed`` (default): the floor(tail_fraction *
   n_finite) lowest and as many highest ranks, whatever the budget.
   ``tail: rate`` (the CCS paper's hard cutoff): only the hardest (highest
   scores) go, floor(beta * n_finite) of them with beta = hard_slope * alpha,
   alpha = 1 - m / n the cluster's pruning rate, so the more a cluster is
   pruned, the more of its hardest samples (likeliest mislabelled) are cut.
3. The remaining scores' range [lo, hi] is cut into ``n_strata`` equal-width
   strata (stratum = floor((s - lo) / (hi - lo) * n_strata), the top value in
   the last stratum; hi == lo puts everything in stratum 0).
4. Non-empty strata are visited from the smallest to the largest (ties by
   stratum index). With R samples still to draw and S strata still to visit,
   a stratum gets quota R // S, takes min(quota, its size) drawn uniformly at
   random without replacement, and passes what it could not fill on. The last
   stratum gets all that remains. This meets R exactly whenever the strata hold
   at least R samples (the larger strata come later and can absorb it).
5. If the kept middle held fewer than m samples, the shortfall is topped up from
   the dropped tails, least extreme first (rank distance to the nearest end of
   the ranking, descending; ties: low tail first, then index), then from the NaN
   samples. So the result always has exactly min(m, n) samples.

``select_per_cluster`` runs a sampler (``SAMPLERS``: ``ccs``, or the
ablations ``uniform``, ``hardest``, ``easiest``) in every cluster with that
cluster's routed expert and share, each cluster with its own generator seeded
by (seed, k).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass
class CCSConfig:
    """Stratified sampling inside a cluster.

    n_strata: equal-width score strata; 50 as in the paper.
    tail: ``fixed`` drops ``tail_fraction`` at each end whatever the budget
        (the Adapt-inf reference code); ``rate`` drops only the hardest
        ``hard_slope`` x (1 - m / n) of a cluster asked for m of its n samples
        (the CCS paper's hard cutoff, which grows with the pruning rate).
    tail_fraction: share of each tail (by rank) dropped under ``tail: fixed``;
        0.05 as in the Adapt-inf reference (hardest/easiest 5% are mostly noise).
    hard_slope: beta / alpha under ``tail: rate``. 0.3 matches the CCS
        paper's cutoff of 0.3 at 90% pruning of CIFAR-10 (0.27 here); at the
        demo's 25% budget (alpha 0.75) the hardest 22.5% go. The paper tunes
        beta per dataset and rate: choose it on a validation split.
    seed: draws inside strata; cluster k uses np.random.default_rng([seed, k]).
    """

    n_strata: int = 50
    tail: Literal["fixed", "rate"] = "fixed"
    tail_fraction: float = 0.05
    hard_slope: float = 0.3
    seed: int = 0

    def __post_init__(self):
        if self.tail not in ("fixed", "rate"):
            raise ValueError(f"select.ccs.tail must be fixed or rate, got {self.tail!r}")
        if not 0.0 <= self.hard_slope < 1.0:
            raise ValueError(f"select.ccs.hard_slope must be in [0, 1), got {self.hard_slope}")


def tail_counts(n: int, alpha: float, cfg: CCSConfig) -> tuple[int, int]:
    """(lowest, highest) ranks dropped of ``n`` finite scores in a cluster pruned at rate
    ``alpha`` (1 - drawn / size).

    fixed: (floor(tail_fraction n), the same). rate: (0, floor(hard_slope alpha n)).
    Example: n = 20, 5 drawn (alpha 0.75), hard_slope 0.4 -> beta 0.3 -> (0, 6).
    """
    if cfg.tail == "fixed":
        k = int(np.floor(cfg.tail_fraction * n))
        return k, k
    return 0, int(np.floor(cfg.hard_slope * alpha * n + 1e-9))


def ccs_sample(scores: np.ndarray, m: int, cfg: CCSConfig, rng: np.random.Generator) -> np.ndarray:
    """Indices (min(m, n),) int64, sorted, into ``scores`` (n,) of the samples drawn."""
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[0]
    if m < 0:
        raise ValueError(f"m must be >= 0, got {m}")
    m = min(int(m), n)
    if m == n:
        return np.arange(n, dtype=np.int64)
    if not 0.0 <= cfg.tail_fraction < 0.5:
        raise ValueError(f"tail_fraction must be in [0, 0.5), got {cfg.tail_fraction}")

    finite = np.flatnonzero(~np.isnan(scores))
    missing = np.flatnonzero(np.isnan(scores))
    ranked = finite[np.argsort(scores[finite], kind="stable")]  # finite indices by score
    n_low, n_high = tail_counts(ranked.size, 1.0 - m / n, cfg)
    middle = ranked[n_low: ranked.size - n_high]

    chosen: list[np.ndarray] = []
    if middle.size:
        s = scores[middle]
        lo, hi = s.min(), s.max()
        if hi > lo:
            strata = np.minimum(((s - lo) / (hi - lo) * cfg.n_strata).astype(np.int64), cfg.n_strata - 1)
        else:
            strata = np.zeros(middle.size, dtype=np.int64)
        sizes = np.bincount(strata, minlength=cfg.n_strata)
        visit = [b for b in np.argsort(sizes, kind="stable") if sizes[b] > 0]
        remaining = m
        for j, b in enumerate(visit):
            take = min(int(sizes[b]), remaining // (len(visit) - j))
            if take:
                members = middle[strata == b]
                chosen.append(rng.choice(members, size=take, replace=False))
                remaining -= take
    else:
        remaining = m

    if remaining > 0:
        low_tail = ranked[:n_low]  # most extreme first
        high_tail = ranked[ranked.size - n_high:][::-1]  # most extreme first
        depth = np.concatenate([np.arange(n_low), np.arange(n_high)])
        side = np.concatenate([np.zeros(n_low, np.int64), np.ones(n_high, np.int64)])
        tails = np.concatenate([low_tail, high_tail])
        order = np.lexsort((tails, side, -depth))  # deepest (least extreme) first, low tail first
        topup = np.concatenate([tails[order], missing])
        chosen.append(topup[:remaining])
    out = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    return out.astype(np.int64)


def uniform_sample(scores: np.ndarray, m: int, cfg: CCSConfig, rng: np.random.Generator) -> np.ndarray:
    """Ablation: min(m, n) of the n samples uniformly at random, scores unread."""
    n = np.asarray(scores).shape[0]
    return np.sort(rng.choice(n, size=min(int(m), n), replace=False)).astype(np.int64)


def extreme_sample(scores: np.ndarray, m: int, hardest: bool) -> np.ndarray:
    """The min(m, n) highest (``hardest``) or lowest finite scores, ties by index; samples
    without a score (NaN) come last, in index order."""
    s = np.asarray(scores, dtype=np.float64)
    finite = np.flatnonzero(~np.isnan(s))
    ranked = finite[np.argsort(-s[finite] if hardest else s[finite], kind="stable")]
    order = np.concatenate([ranked, np.flatnonzero(np.isnan(s))])
    return np.sort(order[:min(int(m), s.shape[0])]).astype(np.int64)


Sampler = Callable[[np.ndarray, int, CCSConfig, np.random.Generator], np.ndarray]
# How a cluster's share is drawn (``select.sampling``): CCS, or an ablation of it.
SAMPLERS: dict[str, Sampler] = {
    "ccs": ccs_sample,
    "uniform": uniform_sample,
    "hardest": lambda s, m, cfg, rng: extreme_sample(s, m, hardest=True),
    "easiest": lambda s, m, cfg, rng: extreme_sample(s, m, hardest=False),
}


def select_per_cluster(labels: np.ndarray, scores: dict[str, np.ndarray], chosen: np.ndarray,
                       shares: np.ndarray, cfg: CCSConfig, sampling: str = "ccs") -> np.ndarray:
    """Global indices (sum(shares),) int64, sorted, drawn by ``SAMPLERS[sampling]`` in every cluster.

    labels: (N,) cluster per sample; scores: expert -> (N,) scores in routing
    order; chosen: (K,) expert index per cluster (``RouteResult.chosen``);
    shares: (K,) samples to draw per cluster (``water_fill``).
    """
    if sampling not in SAMPLERS:
        raise ValueError(f"unknown sampling {sampling!r}; known: {sorted(SAMPLERS)}")
    sample = SAMPLERS[sampling]
    experts = list(scores)
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(len(shares) + 1))
    picked = []
    for k, share in enumerate(shares):
        members = order[bounds[k]:bounds[k + 1]]
        if share == 0 or members.size == 0:
            continue
        s = np.asarray(scores[experts[chosen[k]]])[members]
        rng = np.random.default_rng([cfg.seed, k])
        picked.append(members[sample(s, int(share), cfg, rng)])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
