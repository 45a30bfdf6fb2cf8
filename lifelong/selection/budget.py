"""Split a sample budget across clusters by water-filling (docs/design.md step 5).

The same split gives the per-cluster keep counts of pruning (step 8), with the
pool cap as the total.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np


@dataclass
class BudgetConfig:
    """Samples to select per round: exactly one of ``count`` or ``fraction``.

    count: absolute number of samples.
    fraction: share of the active pool, in (0, 1]; the count is
        floor(fraction * pool_size) so the budget never exceeds the fraction.
    of: what ``fraction`` is a share of. ``pool`` (default): the active pool,
        so once the pool cap prunes, a round trains on a fraction of the
        capped pool, less than an uncapped run would. ``seen``: every training
        sample ingested so far, pruned ones included, so the cap does not
        shrink training (a capped and an uncapped run train on as many
        samples; still at most the active pool).
    """

    count: Optional[int] = None
    fraction: Optional[float] = 0.1
    of: Literal["pool", "seen"] = "pool"


def resolve_budget(pool_size: int, cfg: BudgetConfig, seen: int | None = None) -> int:
    """Budget in samples for a pool of ``pool_size``, clipped to [0, pool_size].

    ``seen``: training samples ingested so far, pruned ones included (None:
    none pruned, i.e. ``pool_size``); the base of ``fraction`` under ``of: seen``.
    """
    if (cfg.count is None) == (cfg.fraction is None):
        raise ValueError("BudgetConfig needs exactly one of count or fraction")
    if cfg.count is not None:
        if cfg.count < 0:
            raise ValueError(f"budget count must be >= 0, got {cfg.count}")
        return min(cfg.count, pool_size)
    if not 0.0 <= cfg.fraction <= 1.0:
        raise ValueError(f"budget fraction must be in [0, 1], got {cfg.fraction}")
    if seen is not None and seen < pool_size:
        raise ValueError(f"samples seen ({seen}) cannot be fewer than the active pool ({pool_size})")
    base = pool_size if cfg.of == "pool" or seen is None else seen
    # the epsilon absorbs representation error, e.g. 0.29 * 100 = 28.999999999999996
    return min(int(math.floor(cfg.fraction * base + 1e-9)), pool_size)


def water_fill(sizes, total: int, power: float = 0.0) -> np.ndarray:
    """Shares (K,) int64 of ``total`` over clusters of ``sizes`` (K,), each share <= its size,
    in proportion to size ** ``power`` (0: equal shares, the paper's split; 1: in proportion
    to the sizes, what a uniform draw gives each cluster on average; 0.5: to their square roots).

    Repeat: each open cluster's share is the remaining total times its weight over the open
    weights; every open cluster whose size is <= its share is taken whole and closed. When none
    is, each open cluster gets the whole part of its share, and the units left over go one each
    to the open clusters with the largest fractional parts, ties to the larger cluster, then to
    the lower index. The shares sum to exactly min(total, sum(sizes)).

    Example (power 0): sizes [2, 10, 10], total 14 -> share 14/3, cluster 0 taken whole (2);
    remaining 12 over 2 clusters -> [2, 6, 6].
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if sizes.ndim != 1 or (sizes < 0).any():
        raise ValueError(f"sizes must be a 1-D array of counts >= 0, got {sizes}")
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    if not 0.0 <= power <= 1.0:
        raise ValueError(f"power must be in [0, 1], got {power}")
    weights = np.where(sizes > 0, sizes.astype(np.float64) ** power, 0.0)
    shares = np.zeros_like(sizes)
    remaining = min(int(total), int(sizes.sum()))
    open_ = sizes > 0
    while open_.any():
        share = np.where(open_, remaining * weights / weights[open_].sum(), 0.0)
        fits = open_ & (sizes <= share)
        if fits.any():
            shares[fits] = sizes[fits]
            remaining -= int(sizes[fits].sum())
            open_ &= ~fits
            continue
        idx = np.flatnonzero(open_)
        whole = np.floor(share[idx]).astype(np.int64)
        shares[idx] = whole
        extra = remaining - int(whole.sum())
        frac = share[idx] - whole
        order = idx[np.lexsort((idx, -sizes[idx], -frac))]  # largest fraction, larger, lower index
        shares[order[:extra]] += 1
        break
    return shares
