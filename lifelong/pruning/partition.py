"""Pruning's own partition of the pool: small clusters, at a cost linear in N.

SemDeDup compares every sample with the earlier samples of its cluster, so its
cost is about N x (mean cluster size) x D. Selection's clusters are few and
large (pseudo-skills, K = 16), which would make that O(N^2 / K); pruning
therefore partitions the pool on its own into clusters of at most about
``cluster_size`` samples.

A flat k-means with K = N / cluster_size would move the quadratic cost into the
assignment step (N x K x D). The partition is a tree instead: a node with more
than ``cluster_size`` rows is split by seeded spherical k-means into
k = min(branching, ceil(n / cluster_size)) children, and so on down; leaves are
the clusters. Each level costs N x branching x D, and there are about
log_branching(N / cluster_size) levels (2 at 1M with the defaults), so the
whole partition is O(N log N) and the max-sim table O(N x cluster_size x D).
A leaf's centroid is the normalised mean of its rows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lifelong.selection.cluster import ClusterConfig, ClusterResult, _normalise, cluster


@dataclass
class PruneClusterConfig:
    """The partition that pruning deduplicates within.

    cluster_size: a node with more rows than this is split; leaves hold about
        this many samples or fewer. 1,000 keeps a cluster's similarity block at
        4 MB and near-duplicates together (they land in one leaf > 99.9% of
        the time on the 1M bench).
    branching: largest k of one split (tree fan-out).
    niter: Lloyd iterations per split (10: the split only has to be coarse).
    seed: seeds every split (depth is added, so sibling splits differ).
    max_train_points: rows a split trains on (the rest are assigned).
    chunk_rows: rows assigned at a time.
    gpu: faiss k-means on the GPUs when faiss-gpu sees any.
    """

    cluster_size: int = 1000
    branching: int = 32
    niter: int = 10
    seed: int = 0
    max_train_points: int = 65536
    chunk_rows: int = 65536
    gpu: bool = True

    def __post_init__(self):
        if self.cluster_size < 1 or self.branching < 2:
            raise ValueError(f"prune.cluster needs cluster_size >= 1 and branching >= 2, got {self}")


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
        if size <= cfg.cluster_size:
            leaves.append(np.arange(n) if rows is None else rows)
            continue
        k = min(cfg.branching, math.ceil(size / cfg.cluster_size))
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
