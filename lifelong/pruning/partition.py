"""Pruning's own partition of the pool: small clusters, at a cost linear in N.

SemDeDup compares every sample with the earlier samples of its cluster, so its
cost is about N x (mean cluster size) x D. Selection's clusters are few and
large (pseudo-skills, K = 16), which would make that O(N^2 / K); pruning
therefore partitions the pool on its own into clusters of at most about
``cluster_size`` samples.

The partition is seeded spherical k-means with k = ceil(N / cluster_size)
(``branching`` None, the default), so clusters keep their size as the pool
grows and the max-sim table costs O(N x cluster_size x D), linear in N. A
cluster that still holds more than ``max_size_factor`` x cluster_size rows is
split again the same way, which bounds the largest block. The k-means
assignment itself is N x k x D, i.e. O(N^2 / cluster_size) with a small
constant (1M x 384 with k = 1,000: ~20 s on 2 cores). ``branching`` = b turns
the partition into a tree of splits of at most b children, O(N log N), at a
price: coarse splits of high-dimensional data cut through dense regions, and
near-duplicates land in different leaves more often (on the 1M bench, b = 32
kept 93.6% of planted pairs together, the flat split 99.99%).
A leaf's centroid is the normalised mean of its rows.

``prune.mode: quota`` does not partition: it deduplicates within selection's
pseudo-skill clusters of the same round (:func:`selection_labels`, read from
``rounds/<t>/select/scores.parquet``), each centroid the normalised mean of its
members' pruning embeddings.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from lifelong.selection.cluster import ClusterConfig, ClusterResult, _normalise, cluster, from_labels


@dataclass
class PruneClusterConfig:
    """The partition that pruning deduplicates within.

    cluster_size: mean samples per cluster (k = ceil(n / cluster_size) per
        split). 1,000 keeps a cluster's similarity block at 4 MB and
        near-duplicates together (> 99.9% of planted pairs on the 1M bench).
    max_size_factor: a cluster above max_size_factor x cluster_size rows is
        split again.
    branching: None: one flat split; b: largest k of one split (a tree).
    niter: Lloyd iterations per split (10: the split only has to be coarse).
    seed: seeds every split (depth is added, so sibling splits differ).
    max_train_points: rows a split trains on (the rest are assigned).
    chunk_rows: rows assigned at a time.
    gpu: faiss k-means on the GPUs when faiss-gpu sees any.
    """

    cluster_size: int = 1000
    max_size_factor: float = 4.0
    branching: Optional[int] = None
    niter: int = 10
    seed: int = 0
    max_train_points: int = 65536
    chunk_rows: int = 65536
    gpu: bool = True

    def __post_init__(self):
        if self.cluster_size < 1 or self.max_size_factor < 1 or (self.branching is not None and self.branching < 2):
            raise ValueError(f"prune.cluster needs cluster_size >= 1, max_size_factor >= 1 and branching None "
                             f"or >= 2, got {self}")


def partition(x, cfg: PruneClusterConfig) -> ClusterResult:
    """Leaf clusters of unit rows x (N, D) (fp16/fp32, array or memmap).

    Returns labels (N,) in [0, K) (leaves numbered depth-first) and centroids
    (K, D) float32 unit rows; ``silhouette`` is empty.
    """
    n = x.shape[0]
    if n == 0:
        raise ValueError("cannot partition zero rows")
    labels = np.empty(n, dtype=np.int64)
    leaves: list[np.ndarray] = []
    stack: list[tuple[np.ndarray | None, int]] = [(None, 0)]  # (rows or None = all of x, depth)
    while stack:
        rows, depth = stack.pop()
        size = n if rows is None else len(rows)
        if size <= (cfg.cluster_size if depth == 0 or cfg.branching else cfg.max_size_factor * cfg.cluster_size):
            leaves.append(np.arange(n) if rows is None else rows)
            continue
        k = math.ceil(size / cfg.cluster_size)
        k = min(k, cfg.branching) if cfg.branching else k
        ccfg = ClusterConfig(k=k, niter=cfg.niter, seed=cfg.seed + depth, max_train_points=cfg.max_train_points,
                             chunk_rows=cfg.chunk_rows, gpu=cfg.gpu)
        sub = cluster(x if rows is None else x[rows], ccfg).labels
        order = np.argsort(sub, kind="stable")
        bounds = np.searchsorted(sub[order], np.arange(k + 1))
        children = [order[bounds[j]:bounds[j + 1]] for j in range(k) if bounds[j + 1] > bounds[j]]
        if len(children) == 1:  # k-means could not split (e.g. identical rows): a leaf, however big
            leaves.append(np.arange(n) if rows is None else rows)
            continue
        for child in reversed(children):
            stack.append((child if rows is None else rows[child], depth + 1))
    centroids = np.empty((len(leaves), x.shape[1]), dtype=np.float32)
    for j, rows in enumerate(leaves):
        labels[rows] = j
        centroids[j] = _normalise(x[np.sort(rows)]).mean(0)
    return ClusterResult(labels=labels, centroids=_normalise(centroids), silhouette={})


def selection_labels(scores_table: Path, ids: list[str]) -> np.ndarray:
    """(N,) int64 the selection's cluster of each of ``ids`` (the active pool, as the round's
    select stage saw it), read from its ``scores.parquet``. A strategy that does not cluster
    writes no cluster column: an error, as is an id the table does not hold."""
    import pyarrow.parquet as pq

    if not Path(scores_table).is_file() or "cluster" not in pq.read_schema(scores_table).names:
        raise ValueError(f"prune.mode=quota prunes within selection's clusters, and {scores_table} has none "
                         f"(a strategy that clusters, e.g. adapt_inf, writes them)")
    t = pq.read_table(scores_table, columns=["id", "cluster"])
    of = dict(zip(t.column("id").to_pylist(), t.column("cluster").to_pylist()))
    missing = [i for i in ids if i not in of]
    if missing:
        raise ValueError(f"{len(missing)} active samples (e.g. {missing[0]!r}) have no cluster in {scores_table}")
    return np.array([of[i] for i in ids], dtype=np.int64)


def selection_partition(x, scores_table: Path, ids: list[str]) -> ClusterResult:
    """Selection's clusters of ``ids`` over their pruning embeddings x (N, D): labels as the
    selection's, centroids the normalised means of x (prune.mode quota)."""
    return from_labels(x, selection_labels(scores_table, ids))
