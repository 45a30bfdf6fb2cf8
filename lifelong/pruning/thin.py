"""Where count mode's removals go once no pair is above 1 - epsilon (lifelong/pruning/semdedup.py, point 4).

Both take the max-sim table's rows still kept and remove ``count`` of them, the
most similar to an earlier kept row first, references of removed duplicates last:
``thin_by_cluster`` water-fills the kept total over pruning's partition (the
largest clusters shrink first; also quota mode's rule), ``thin_by_group`` shares
the removals over groups (datasets) in proportion to their kept sizes. ``table`` is
semdedup's MaxSimTable (cluster, position per row).
"""
from __future__ import annotations

import numpy as np

from lifelong.selection.budget import water_fill


def thin_by_cluster(table, removed: np.ndarray, protected: np.ndarray, s_kept: np.ndarray, count: int) -> np.ndarray:
    """Table rows (count,) to remove from the kept ones: the kept total is water-filled
    over the clusters; in each, the most similar to an earlier kept row go first,
    references of removed duplicates last (ties: later position first)."""
    sizes = np.bincount(table.cluster[~removed], minlength=int(table.cluster.max()) + 1)
    quota = sizes - water_fill(sizes, int(sizes.sum()) - count)
    return _most_redundant(table, ~removed, protected, s_kept, table.cluster, sizes, quota)


def thin_by_group(table, removed: np.ndarray, protected: np.ndarray, s_kept: np.ndarray,
                  count: int, group: np.ndarray) -> np.ndarray:
    """Table rows (count,) to remove from the kept ones, shared over ``group`` (per table row)
    in proportion to each group's kept size (largest remainder, ties to the lower group); in a
    group the most similar to an earlier kept row go first, references of removed duplicates
    last (ties: later position first)."""
    _, g = np.unique(group, return_inverse=True)
    sizes = np.bincount(g[~removed], minlength=int(g.max()) + 1)
    share = count * sizes / max(int(sizes.sum()), 1)
    quota = np.floor(share).astype(np.int64)
    rest = count - int(quota.sum())
    if rest > 0:
        quota[np.lexsort((np.arange(len(share)), -(share - quota)))[:rest]] += 1
    return _most_redundant(table, ~removed, protected, s_kept, g, sizes, np.minimum(quota, sizes))


def _most_redundant(table, kept: np.ndarray, protected: np.ndarray, s_kept: np.ndarray, g: np.ndarray,
                    sizes: np.ndarray, quota: np.ndarray) -> np.ndarray:
    """The first quota[k] kept rows of each group k (g per table row, sizes its kept counts) in
    the order: unprotected first, most similar to an earlier kept row first, later position first."""
    rows = np.flatnonzero(kept)
    order = rows[np.lexsort((-table.position[rows], -s_kept[rows].astype(np.float64), protected[rows], g[rows]))]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.arange(len(order)) - starts[g[order]]
    return order[rank < quota[g[order]]]
