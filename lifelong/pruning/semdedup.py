"""Cluster-wise semantic deduplication of the pool (DESIGN.md step 8, SemDeDup).

Definition implemented (per cluster k with unit embeddings x_i and unit
centroid c_k):

1. Order the cluster's samples by cosine distance to the centroid, 1 - x.c:
   ``far_first`` (default, as SemDeDup's "keep hard") puts the farthest first,
   ``near_first`` the nearest first; ties by sample index.
2. For the sample at position p in that order, max-sim(p) = max_{q < p}
   x_p . x_q, the highest cosine similarity to ANY earlier sample of the
   cluster (as in SemDeDup; whether that earlier sample is itself removed does
   not matter), and duplicate-of(p) = the earlier sample attaining it. The
   first sample has max-sim = -inf (no earlier sample) and duplicate-of = -1.
   For a group of mutual near-duplicates (planted or exact copies) this equals
   "similarity to an earlier KEPT sample": the first member is kept, every
   later member has max-sim ~ 1. It differs only on chains (a ~ b ~ c with a,
   c dissimilar), where c may be removed because of b even if b is removed.
3. ``count`` mode: remove the n_k - keep_k samples with the highest max-sim
   (ties: later position first), keep_k from water-filling the pool cap over
   the cluster sizes. ``epsilon`` mode: remove every sample with
   max-sim > 1 - epsilon.

Memory: the similarities of a cluster are computed in row blocks of at most
``max_block_elems`` floats against the earlier rows, never n x n at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

from lifelong.selection.budget import water_fill


@dataclass
class PruneConfig:
    """Permanent pool pruning.

    cap: maximum active pool size after pruning; None disables pruning.
    mode: ``count`` prunes down to the cap exactly (water-filled keep counts per
        cluster); ``epsilon`` removes every sample with max-sim > 1 - epsilon
        (the pool may end above or below the cap).
    epsilon: threshold of ``epsilon`` mode; 0.05 (cos > 0.95) catches re-encoded
        or lightly edited copies while distinct samples of one skill stay below.
    order: which end of the centroid-distance order comes first and is kept
        within a duplicate group (far_first keeps the least prototypical copy,
        SemDeDup's default).
    max_block_elems: similarity block size in floats (2**24 -> 64 MiB fp32).
    """

    cap: Optional[int] = None
    mode: Literal["count", "epsilon"] = "count"
    epsilon: float = 0.05
    order: Literal["far_first", "near_first"] = "far_first"
    max_block_elems: int = 2**24


@dataclass
class MaxSimTable:
    """Per sample (N,), in processing order (cluster by cluster, then centroid order):
    index: global sample index; cluster: its cluster; position: rank in its cluster's
    order; max_sim: float32 max cosine to an earlier sample (-inf for the first);
    duplicate_of: global index of that earlier sample (-1 for the first)."""

    index: np.ndarray
    cluster: np.ndarray
    position: np.ndarray
    max_sim: np.ndarray
    duplicate_of: np.ndarray


@dataclass
class PruneResult:
    """Removed samples (R,), sorted by index, for the ledger: index, max_sim,
    cluster, duplicate_of (see ``MaxSimTable``); reason names the rule."""

    index: np.ndarray
    max_sim: np.ndarray
    cluster: np.ndarray
    duplicate_of: np.ndarray
    reason: str


def max_sim_to_earlier(x: np.ndarray, max_block_elems: int = 2**24) -> tuple[np.ndarray, np.ndarray]:
    """For unit rows x (n, d) fp32: (max_sim (n,) float32, argmax (n,) int64) over earlier rows.

    Row 0 gets (-inf, -1). Rows are processed in blocks of b rows against the
    rows before the block's end: b * n floats at a time.
    """
    n = x.shape[0]
    best = np.full(n, -np.inf, dtype=np.float32)
    arg = np.full(n, -1, dtype=np.int64)
    if n < 2:
        return best, arg
    b = int(max(1, min(n, max_block_elems // n)))
    upper = np.triu(np.ones((b, b), dtype=bool))  # column >= row within the diagonal block
    for i0 in range(0, n, b):
        i1 = min(i0 + b, n)
        sims = x[i0:i1] @ x[:i1].T  # (rows, i1)
        sims[:, i0:i1][upper[: i1 - i0, : i1 - i0]] = -np.inf
        a = np.argmax(sims, axis=1)
        v = sims[np.arange(i1 - i0), a]
        best[i0:i1] = v
        arg[i0:i1] = np.where(np.isneginf(v), -1, a)
    return best, arg


def max_sim_table(embeddings, labels: np.ndarray, centroids: np.ndarray, cfg: PruneConfig) -> MaxSimTable:
    """Max-sim of every sample to the earlier samples of its cluster.

    embeddings: (N, D) fp16/fp32 (array or memmap; rows are re-normalised);
    labels: (N,) cluster in [0, K); centroids: (K, D).
    """
    labels = np.asarray(labels, dtype=np.int64)
    n_clusters = centroids.shape[0]
    cents = np.asarray(centroids, dtype=np.float32)
    cents = cents / np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
    by_cluster = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[by_cluster], np.arange(n_clusters + 1))
    n = labels.shape[0]
    index = np.empty(n, np.int64)
    position = np.empty(n, np.int64)
    max_sim = np.empty(n, np.float32)
    dup = np.empty(n, np.int64)
    for k in range(n_clusters):
        lo, hi = bounds[k], bounds[k + 1]
        if lo == hi:
            continue
        members = by_cluster[lo:hi]  # ascending index
        x = np.asarray(embeddings[members], dtype=np.float32)
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        dist = 1.0 - x @ cents[k]  # (n_k,)
        order = np.argsort(-dist if cfg.order == "far_first" else dist, kind="stable")
        x = x[order]
        ms, arg = max_sim_to_earlier(x, cfg.max_block_elems)
        ordered = members[order]
        index[lo:hi] = ordered
        position[lo:hi] = np.arange(hi - lo)
        max_sim[lo:hi] = ms
        dup[lo:hi] = np.where(arg >= 0, ordered[np.maximum(arg, 0)], -1)
    return MaxSimTable(index=index, cluster=labels[index], position=position, max_sim=max_sim, duplicate_of=dup)


def _result(table: MaxSimTable, rows: np.ndarray, reason: str) -> PruneResult:
    rows = rows[np.argsort(table.index[rows])]
    return PruneResult(index=table.index[rows], max_sim=table.max_sim[rows], cluster=table.cluster[rows],
                       duplicate_of=table.duplicate_of[rows], reason=reason)


def prune_by_count(table: MaxSimTable, keep: np.ndarray) -> PruneResult:
    """Remove, in each cluster k, the n_k - keep[k] samples with the highest max-sim
    (ties: later position first)."""
    keep = np.asarray(keep, dtype=np.int64)
    sizes = np.bincount(table.cluster, minlength=len(keep))
    n_remove = np.maximum(sizes - keep, 0)
    # within each cluster: by max-sim descending, then position descending
    order = np.lexsort((-table.position, -table.max_sim.astype(np.float64), table.cluster))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order)) - starts[table.cluster[order]]
    rows = np.flatnonzero(rank < n_remove[table.cluster])
    return _result(table, rows, "semdedup_count")


def prune_by_epsilon(table: MaxSimTable, epsilon: float) -> PruneResult:
    """Remove every sample with max-sim > 1 - epsilon."""
    return _result(table, np.flatnonzero(table.max_sim > 1.0 - epsilon), "semdedup_epsilon")


def keep_counts(labels: np.ndarray, n_clusters: int, cap: int) -> np.ndarray:
    """Per-cluster keep counts (K,): the cap water-filled over the cluster sizes."""
    return water_fill(np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_clusters), cap)


def semdedup(embeddings, labels: np.ndarray, centroids: np.ndarray, cfg: PruneConfig) -> PruneResult:
    """Samples to remove from the pool by cluster-wise SemDeDup under ``cfg``.

    Count mode with no cap, or a pool already within the cap, removes nothing.
    """
    n = len(labels)
    if cfg.mode == "count" and (cfg.cap is None or n <= cfg.cap):
        empty = np.zeros(0, np.int64)
        return PruneResult(empty, np.zeros(0, np.float32), empty, empty, "semdedup_count")
    table = max_sim_table(embeddings, labels, centroids, cfg)
    if cfg.mode == "count":
        return prune_by_count(table, keep_counts(labels, centroids.shape[0], cfg.cap))
    return prune_by_epsilon(table, cfg.epsilon)
