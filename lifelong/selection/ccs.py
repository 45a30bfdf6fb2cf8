"""Coverage-centric sampling (CCS) inside each cluster (docs/design.md step 6).

``ccs_sample`` draws exactly ``min(m, n)`` of a cluster's n samples using the
routed expert's scores:

1. NaN scores are missing: those samples are not stratified and are only used
   as the very last top-up (step 6), in index order.
2. The finite scores are ranked (stable: ties by index). The floor(tail_fraction
   * n_finite) lowest and as many highest ranks are dropped as extreme tails.
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

``select_per_cluster`` runs it in every cluster with that cluster's routed
expert and share, each cluster with its own generator seeded by (seed, k).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CCSConfig:
    """Stratified sampling inside a cluster.

    n_strata: equal-width score strata; 50 as in the paper.
    tail_fraction: share of each tail (by rank) dropped as outliers before
        stratifying; 0.05 as in the paper (hardest/easiest 5% are mostly noise).
    seed: draws inside strata; cluster k uses np.random.default_rng([seed, k]).
    """

    n_strata: int = 50
    tail_fraction: float = 0.05
    seed: int = 0


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
    n_tail = int(np.floor(cfg.tail_fraction * ranked.size))
    middle = ranked[n_tail: ranked.size - n_tail]

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
        low_tail = ranked[:n_tail]  # most extreme first
        high_tail = ranked[ranked.size - n_tail:][::-1]  # most extreme first
        depth = np.concatenate([np.arange(n_tail), np.arange(n_tail)])
        side = np.concatenate([np.zeros(n_tail, np.int64), np.ones(n_tail, np.int64)])
        tails = np.concatenate([low_tail, high_tail])
        order = np.lexsort((tails, side, -depth))  # deepest (least extreme) first, low tail first
        topup = np.concatenate([tails[order], missing])
        chosen.append(topup[:remaining])
    out = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    return out.astype(np.int64)


def select_per_cluster(labels: np.ndarray, scores: dict[str, np.ndarray], chosen: np.ndarray,
                       shares: np.ndarray, cfg: CCSConfig) -> np.ndarray:
    """Global indices (sum(shares),) int64, sorted, selected by CCS in every cluster.

    labels: (N,) cluster per sample; scores: expert -> (N,) scores in routing
    order; chosen: (K,) expert index per cluster (``RouteResult.chosen``);
    shares: (K,) samples to draw per cluster (``water_fill``).
    """
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
        picked.append(members[ccs_sample(s, int(share), cfg, rng)])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
