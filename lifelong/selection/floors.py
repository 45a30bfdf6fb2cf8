"""Floors: parts of a round's budget a dataset gets whatever the strategy's rule would give it.

``select.new_floor`` guards the dataset that arrived this round, ``select.replay_floor``
every dataset that arrived before it. A floor of F gives a dataset of ``n_d`` samples in a
pool of ``N`` at least ceil(F x budget x n_d / N) of the budget: F times what a uniform draw
gives it on average (never more than the dataset). Those samples are drawn first, by the
strategy's own rule among the dataset's samples; the rest of the budget is then drawn by the
same rule from everything not yet taken, so the budget is met exactly.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lifelong.selection.budget import water_fill

# pick(candidate_rows, b) -> (b of the candidates by a strategy's rule, its per-cluster shares or None)
Pick = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray | None]]


def new_floor_count(inp, cfg, budget: int) -> int:
    """Samples of this round's new dataset the budget must include (``SelectConfig.new_floor``)."""
    n, n_new = len(inp.ids), int(np.count_nonzero(inp.is_new))
    if cfg.new_floor <= 0 or n_new in (0, n):
        return 0
    return min(n_new, budget, int(np.ceil(cfg.new_floor * budget * n_new / n - 1e-9)))


def floor_counts(inp, cfg, budget: int) -> list[tuple[np.ndarray, int]]:
    """(rows of a dataset, samples of it the budget must include) for every dataset with a floor:
    the new one first (``new_floor``), then each earlier one in name order (``replay_floor``). When
    the floors together ask for more than the budget they are cut in proportion to it."""
    out = []
    k_new = new_floor_count(inp, cfg, budget)
    if k_new:
        out.append((np.flatnonzero(inp.is_new).astype(np.int64), k_new))
    old = ~np.asarray(inp.is_new, dtype=bool)
    if cfg.replay_floor > 0 and old.any():
        if inp.datasets is None:
            raise ValueError("select.replay_floor needs each sample's dataset; the input has none")
        names, n = np.asarray(inp.datasets), len(inp.ids)
        for d in sorted(set(names[old].tolist())):
            rows = np.flatnonzero(old & (names == d)).astype(np.int64)
            k = min(rows.size, budget, int(np.ceil(cfg.replay_floor * budget * rows.size / n - 1e-9)))
            if k:
                out.append((rows, k))
    asked = np.array([k for _, k in out], dtype=np.int64)
    if asked.sum() > budget:
        out = [(rows, int(k)) for (rows, _), k in zip(out, water_fill(asked, budget, 1.0)) if k]
    return out


def with_floor(inp, cfg, budget: int, pick: Pick) -> tuple[np.ndarray, np.ndarray | None]:
    """``pick``'s draw of ``budget`` samples of the whole input, with every floor (``floor_counts``)
    drawn first among its dataset's samples. -> (sorted rows, per-cluster shares summed or None)."""
    everything = np.arange(len(inp.ids), dtype=np.int64)
    floors = floor_counts(inp, cfg, budget)
    if not floors:
        rows, shares = pick(everything, budget)
        return np.sort(rows).astype(np.int64), shares
    parts, shares = [], []
    for rows, k in floors:
        got, s = pick(rows, k)
        parts.append(np.asarray(got, dtype=np.int64))
        shares.append(s)
    left = budget - sum(k for _, k in floors)
    if left > 0:
        got, s = pick(np.setdiff1d(everything, np.concatenate(parts)), left)
        parts.append(np.asarray(got, dtype=np.int64))
        shares.append(s)
    total = None if any(s is None for s in shares) else np.sum(shares, axis=0)
    return np.sort(np.concatenate(parts)).astype(np.int64), total
