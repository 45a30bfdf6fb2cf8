"""Cluster-wise semantic deduplication of the pool (docs/design.md step 8, SemDeDup).

Definitions (per cluster k with unit embeddings x_i and unit centroid c_k):

1. Order the cluster's samples by cosine distance to the centroid, 1 - x.c:
   ``far_first`` (default, SemDeDup's "keep hard") puts the farthest first,
   ``near_first`` the nearest first; ties by sample index.
2. SemDeDup at threshold tau, in that order: a sample is removed when its
   cosine similarity to an earlier *kept* sample of its cluster exceeds tau,
   and kept otherwise. Every removed sample therefore has a kept reference
   (``duplicate_of``) with similarity > tau: of a group of near-copies one
   member stays, and the two members of a duplicate pair are never both
   removed. (Similarity to any earlier sample, kept or not, would remove c
   from a chain a ~ b ~ c although c's only near-copy b is gone too.)
3. ``epsilon`` mode: SemDeDup at tau = 1 - epsilon; the pool may end above or
   below the cap.
4. ``count`` mode removes exactly N - cap samples, redundancy first: the
   global threshold tau >= 1 - epsilon (one for all clusters) whose removals
   come closest to N - cap from below; the few still missing at that
   threshold's granularity are the kept samples most similar to an earlier
   kept one, whose references then stay. Only when even tau = 1 - epsilon
   leaves the pool above the cap (no redundancy left) are clusters thinned:
   the cap is water-filled over the clusters' remaining sizes and each cluster
   removes its kept samples most similar to an earlier kept one, references of
   removed duplicates last (kept samples are then pairwise <= 1 - epsilon, so
   thinning removes no duplicate pair unless the cap forces a reference out).
   ``thin: dataset`` shares those removals over the datasets in proportion to
   their sizes instead (lifelong/pruning/thin.py).

5. ``quota`` mode (the Adapt-inf reference's rule) runs over selection's
   pseudo-skill clusters (``partition.selection_labels``), not pruning's own
   partition: the cap is water-filled over the clusters' sizes (each cluster
   keeps min(size, equal share), a small cluster whole), and each cluster
   removes its size - quota samples of highest max-sim to an earlier sample of
   the cluster (computed once, as the reference's M; ties: later position
   first). Reason ``semdedup_duplicate`` when that max-sim > 1 - epsilon, else
   ``semdedup_quota``.

Similarities to earlier samples are kept as each sample's ``neighbours`` most
similar earlier ones (computed once, in row blocks of at most
``max_block_elems`` floats, never n x n at once), so any threshold is
evaluated without recomputing them; a sample whose listed neighbours above tau
are all removed is checked exactly against every earlier kept sample.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np

from lifelong.pruning.partition import PruneClusterConfig
from lifelong.pruning.thin import thin_by_cluster, thin_by_group


@dataclass
class PruneConfig:
    """Permanent pool pruning.

    cap: maximum active pool size after pruning; None disables pruning.
    mode: ``count`` prunes down to the cap exactly, redundancy first;
        ``epsilon`` removes every sample with similarity > 1 - epsilon to an
        earlier kept sample (the pool may end above or below the cap).
        ``uniform`` removes N - cap samples drawn uniformly at random (the
        ``random_prune`` baseline; lifelong/pruning/uniform.py), no embeddings.
        ``quota`` (the reference's rule) water-fills the cap over selection's
        pseudo-skill clusters and removes, in each, the samples most similar
        to an earlier one down to its quota (module docstring, point 5).
    features: what similarity is measured on: ``hidden``, the mean last hidden
        state of the scoring model (SemDeDup's embedding); ``content``, the
        sample's image thumbnail and idf-weighted words, no model
        (lifelong/pruning/content.py), so near-copies score near 1 and distinct
        records of one template do not.
    thin: count mode's removals once no pair is above 1 - epsilon: ``cluster``
        towards equal partition clusters, ``dataset`` by dataset size (thin.py).
    epsilon: what counts as redundant, in count and epsilon modes: cosine > 1 - epsilon to an
        earlier kept sample. 0.05 (cos > 0.95) catches re-encoded or lightly
        edited copies while distinct samples of one skill stay below.
    order: which end of the centroid-distance order comes first and is kept
        within a duplicate group (far_first keeps the least prototypical copy).
    neighbours: most similar earlier samples remembered per sample (8 x 12
        bytes a sample); groups of more near-copies are checked exactly.
    cluster: the partition deduplication runs within in count and epsilon
        modes (not select's clusters; quota mode uses select's).
    max_block_elems: similarity block size in floats (2**24 -> 64 MiB fp32).
    """

    cap: Optional[int] = None
    mode: Literal["count", "epsilon", "uniform", "quota"] = "count"
    features: Literal["hidden", "content"] = "hidden"
    thin: Literal["cluster", "dataset"] = "cluster"
    epsilon: float = 0.05
    order: Literal["far_first", "near_first"] = "far_first"
    neighbours: int = 8
    cluster: PruneClusterConfig = field(default_factory=PruneClusterConfig)
    max_block_elems: int = 2**24

    def __post_init__(self):
        if self.neighbours < 1:
            raise ValueError(f"prune.neighbours must be >= 1, got {self.neighbours}")
        if self.cap is not None and self.cap < 0:
            raise ValueError(f"prune.cap must be >= 0, got {self.cap}")
        if self.mode not in ("count", "epsilon", "uniform", "quota"):
            raise ValueError(f"prune.mode must be count, epsilon, uniform or quota, got {self.mode!r}")
        if self.features not in ("hidden", "content"):
            raise ValueError(f"prune.features must be hidden or content, got {self.features!r}")
        if self.thin not in ("cluster", "dataset"):
            raise ValueError(f"prune.thin must be cluster or dataset, got {self.thin!r}")


@dataclass
class MaxSimTable:
    """Per sample (N,), in processing order (cluster by cluster, then centroid order):
    index: global sample index; cluster: its cluster; position: rank in its cluster's
    order; neighbours (N, m): table rows of its m most similar earlier samples of the
    cluster, most similar first (-1 padding); neighbour_sim (N, m) float32 their
    cosines (-inf padding)."""

    index: np.ndarray
    cluster: np.ndarray
    position: np.ndarray
    neighbours: np.ndarray
    neighbour_sim: np.ndarray

    @property
    def max_sim(self) -> np.ndarray:
        """(N,) float32 highest cosine to any earlier sample (-inf for a cluster's first)."""
        return self.neighbour_sim[:, 0]

    @property
    def complete(self) -> np.ndarray:
        """(N,) bool: the neighbour list holds every earlier sample of the cluster."""
        return self.position <= self.neighbours.shape[1]


@dataclass
class PruneResult:
    """Removed samples (R,), sorted by index, for the ledger: index; max_sim: cosine to
    the kept sample it duplicates (for a thinned sample: to its most similar earlier
    kept one, -inf if none); cluster; duplicate_of: that kept sample's index (-1 if
    none); reason (R,) str: ``semdedup_duplicate`` / ``semdedup_thin`` /
    ``semdedup_epsilon``."""

    index: np.ndarray
    max_sim: np.ndarray
    cluster: np.ndarray
    duplicate_of: np.ndarray
    reason: np.ndarray


def top_sims_to_earlier(x: np.ndarray, m: int, max_block_elems: int = 2**24) -> tuple[np.ndarray, np.ndarray]:
    """For unit rows x (n, d) fp32: the m highest cosines to earlier rows.

    Returns (sims (n, m) float32 descending, -inf padding; rows (n, m) int64,
    -1 padding; ties: the earlier row first). Rows are processed in blocks of
    b rows against the rows before the block's end: b * n floats at a time.
    """
    n = x.shape[0]
    sims = np.full((n, m), -np.inf, dtype=np.float32)
    rows = np.full((n, m), -1, dtype=np.int64)
    if n < 2:
        return sims, rows
    b = int(max(1, min(n, max_block_elems // n)))
    upper = np.triu(np.ones((b, b), dtype=bool))  # column >= row within the diagonal block
    # Masked cells get distinct values below -1 (a selection over many equal
    # values is slow), and read as "no earlier row" afterwards.
    below = (-2.0 - np.arange(b, dtype=np.float32))[None, :]
    for i0 in range(0, n, b):
        i1 = min(i0 + b, n)
        s = x[i0:i1] @ x[:i1].T  # (r, i1)
        r = i1 - i0
        s[:, i0:i1] = np.where(upper[:r, :r], below[:, :r], s[:, i0:i1])
        w = min(m, i1)
        cols = np.argpartition(s, i1 - w, axis=1)[:, i1 - w:] if i1 > w else np.broadcast_to(np.arange(i1), s.shape)
        v = np.take_along_axis(s, cols, axis=1)
        o = np.lexsort((cols, -v), axis=1)  # by similarity descending, then earlier row first
        v, cols = np.take_along_axis(v, o, axis=1), np.take_along_axis(cols, o, axis=1)
        none = v < -1.5
        sims[i0:i1, :w] = np.where(none, -np.inf, v)
        rows[i0:i1, :w] = np.where(none, -1, cols)
    return sims, rows


def max_sim_to_earlier(x: np.ndarray, max_block_elems: int = 2**24) -> tuple[np.ndarray, np.ndarray]:
    """(max_sim (n,) float32, argmax (n,) int64) over earlier rows; row 0 gets (-inf, -1)."""
    sims, rows = top_sims_to_earlier(x, 1, max_block_elems)
    return sims[:, 0], rows[:, 0]


def _unit_rows(embeddings, idx: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings[idx], dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def max_sim_table(embeddings, labels: np.ndarray, centroids: np.ndarray, cfg: PruneConfig) -> MaxSimTable:
    """Most similar earlier samples of every sample within its cluster.

    embeddings: (N, D) fp16/fp32 (array or memmap; rows are re-normalised);
    labels: (N,) cluster in [0, K); centroids: (K, D).
    """
    labels = np.asarray(labels, dtype=np.int64)
    n_clusters, m = centroids.shape[0], cfg.neighbours
    cents = np.asarray(centroids, dtype=np.float32)
    cents = cents / np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
    by_cluster = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[by_cluster], np.arange(n_clusters + 1))
    n = labels.shape[0]
    index = np.empty(n, np.int64)
    position = np.empty(n, np.int64)
    nb = np.empty((n, m), np.int64)
    nb_sim = np.empty((n, m), np.float32)
    for k in range(n_clusters):
        lo, hi = bounds[k], bounds[k + 1]
        if lo == hi:
            continue
        members = by_cluster[lo:hi]  # ascending index
        x = _unit_rows(embeddings, members)
        dist = 1.0 - x @ cents[k]  # (n_k,)
        order = np.argsort(-dist if cfg.order == "far_first" else dist, kind="stable")
        sims, rows = top_sims_to_earlier(x[order], m, cfg.max_block_elems)
        index[lo:hi] = members[order]
        position[lo:hi] = np.arange(hi - lo)
        nb[lo:hi] = np.where(rows >= 0, rows + lo, -1)
        nb_sim[lo:hi] = sims
    return MaxSimTable(index=index, cluster=labels[index], position=position, neighbours=nb, neighbour_sim=nb_sim)


def sweep(table: MaxSimTable, tau: float, embeddings=None) -> tuple[np.ndarray, np.ndarray]:
    """SemDeDup at threshold tau: (removed (N,) bool, reference (N,) int64) over table rows.

    reference: for a removed row, the earlier kept row it exceeds tau with
    (-1 otherwise). Rows whose max-sim <= tau are kept. The others are decided
    position by position (the rows at position p of every cluster at once):
    their neighbours sit at earlier positions and are final by then, so one
    pass decides every row, at a cost linear in the candidates (a fixed-point
    iteration would pass over all of them once per link of the longest chain
    of removals). A row whose listed neighbours above tau are all removed (and
    whose list is not complete) is checked against every earlier kept row of
    its cluster when ``embeddings`` is given, and counts as kept otherwise.
    """
    n = len(table.index)
    removed = np.zeros(n, dtype=bool)
    reference = np.full(n, -1, dtype=np.int64)
    cand = np.flatnonzero(table.max_sim > tau)
    if not len(cand):
        return removed, reference
    nb = np.maximum(table.neighbours[cand], 0)
    rel = (table.neighbour_sim[cand] > tau) & (table.neighbours[cand] >= 0)  # (c, m)
    open_ = rel.all(1) & ~table.complete[cand]  # the list may miss a kept row above tau
    pos = table.position[cand]
    order = np.argsort(pos, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(pos[order]) > 0])
    for lo, hi in zip(starts, np.r_[starts[1:], len(order)]):
        js = order[lo:hi]  # candidates at one position, one per cluster at most
        kept_ref = rel[js] & ~removed[nb[js]]
        hit = kept_ref.any(1)
        rows = cand[js]
        removed[rows[hit]] = True
        reference[rows[hit]] = nb[js[hit], np.argmax(kept_ref[hit], axis=1)]
        if embeddings is None:
            continue
        # Rare (more near-copies than the list holds, all removed): decide exactly.
        for j in js[~hit & open_[js]]:
            r = cand[j]
            earlier = np.arange(r - table.position[r], r)
            earlier = earlier[~removed[earlier]]
            if len(earlier):
                sims = _unit_rows(embeddings, table.index[earlier]) @ _unit_rows(embeddings, table.index[[r]])[0]
                if sims.max() > tau:
                    removed[r] = True
                    reference[r] = earlier[int(np.argmax(sims))]
    return removed, reference


def _kept_similarity(table: MaxSimTable, removed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) cosine of each row to its most similar listed earlier kept row, and that row (-1: none listed)."""
    ok = (table.neighbours >= 0) & ~removed[np.maximum(table.neighbours, 0)]
    first = np.argmax(ok, axis=1)
    has = ok[np.arange(len(ok)), first]
    rows = np.arange(len(ok))
    return (np.where(has, table.neighbour_sim[rows, first], -np.inf).astype(np.float32),
            np.where(has, table.neighbours[rows, first], -1))


def _result(table: MaxSimTable, removed: np.ndarray, sim: np.ndarray, ref: np.ndarray, reason: np.ndarray) -> PruneResult:
    rows = np.flatnonzero(removed)
    rows = rows[np.argsort(table.index[rows])]
    return PruneResult(index=table.index[rows], max_sim=sim[rows].astype(np.float32), cluster=table.cluster[rows],
                       duplicate_of=np.where(ref[rows] >= 0, table.index[np.maximum(ref[rows], 0)], -1),
                       reason=np.asarray(reason)[rows].astype(str))


def prune_by_epsilon(table: MaxSimTable, epsilon: float, embeddings=None) -> PruneResult:
    """SemDeDup at tau = 1 - epsilon."""
    removed, ref = sweep(table, 1.0 - epsilon, embeddings)
    sim = table.neighbour_sim[np.arange(len(ref)), 0]
    sim = np.where(ref >= 0, _pair_sim(table, ref, embeddings), sim)
    return _result(table, removed, sim, ref, np.full(len(ref), "semdedup_epsilon"))


def _pair_sim(table: MaxSimTable, ref: np.ndarray, embeddings) -> np.ndarray:
    """(N,) cosine of each row to its reference row (listed neighbour, or computed)."""
    hit = table.neighbours == ref[:, None]
    listed = hit.any(1)
    out = np.where(listed, table.neighbour_sim[np.arange(len(ref)), np.argmax(hit, axis=1)], -np.inf)
    missing = np.flatnonzero(~listed & (ref >= 0))
    if len(missing) and embeddings is not None:
        a = _unit_rows(embeddings, table.index[missing])
        b = _unit_rows(embeddings, table.index[ref[missing]])
        out[missing] = (a * b).sum(1)
    return out.astype(np.float32)


def prune_by_count(table: MaxSimTable, cap: int, epsilon: float, embeddings=None,
                   groups: Optional[np.ndarray] = None) -> PruneResult:
    """Remove exactly max(N - cap, 0) samples, redundancy first (module docstring, point 4).

    groups: (N,) int per sample (by global index): thin in proportion to these
    groups (``thin: dataset``) rather than towards equal partition clusters."""
    n = len(table.index)
    target = max(n - int(cap), 0)
    floor = 1.0 - epsilon
    vals = np.unique(table.max_sim[table.max_sim > floor])[::-1]
    taus = np.concatenate([vals, [floor]])  # descending; taus[0] removes nothing

    def at(j):
        return sweep(table, float(taus[j]), embeddings)

    lo, hi = 0, len(taus) - 1
    best = at(hi)
    at_floor = best[0].sum() <= target
    if not at_floor:  # bisect: removals at taus[lo] <= target < at taus[hi]
        best = at(lo)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            cur = at(mid)
            if cur[0].sum() <= target:
                lo, best = mid, cur
            else:
                hi = mid
    removed, ref = best
    sim = _pair_sim(table, ref, embeddings)
    reason = np.where(removed, "semdedup_duplicate", "").astype(object)
    short = target - int(removed.sum())
    if short > 0:
        protected = np.zeros(n, dtype=bool)
        protected[ref[removed & (ref >= 0)]] = True
        s_kept, r_kept = _kept_similarity(table, removed)
        if not at_floor:  # one threshold step removes too many: the next most redundant, one by one
            order = np.lexsort((-table.position, -s_kept.astype(np.float64)))
            for r in order:
                if short == 0:
                    break
                if removed[r] or protected[r]:
                    continue
                removed[r], ref[r], sim[r] = True, r_kept[r], s_kept[r]
                reason[r] = "semdedup_duplicate" if s_kept[r] > floor else "semdedup_thin"
                if r_kept[r] >= 0:
                    protected[r_kept[r]] = True
                short -= 1
        if short > 0:  # no redundancy left: thin the clusters towards equal sizes
            extra = (thin_by_cluster(table, removed, protected, s_kept, short) if groups is None else
                     thin_by_group(table, removed, protected, s_kept, short, np.asarray(groups)[table.index]))
            removed[extra], ref[extra], sim[extra], reason[extra] = True, r_kept[extra], s_kept[extra], "semdedup_thin"
    return _result(table, removed, sim, ref, reason)


def prune_by_quota(table: MaxSimTable, cap: int, epsilon: float) -> PruneResult:
    """Remove max(N - cap, 0) samples by per-cluster quotas (module docstring, point 5)."""
    n = len(table.index)
    none = np.zeros(n, dtype=bool)
    sim, ref = _kept_similarity(table, none)  # nothing removed yet: the max-sim to any earlier sample
    rows = thin_by_cluster(table, none, none, sim, max(n - int(cap), 0))
    removed = np.zeros(n, dtype=bool)
    removed[rows] = True
    reason = np.where(sim > 1.0 - epsilon, "semdedup_duplicate", "semdedup_quota")
    return _result(table, removed, sim, ref, reason)


def semdedup(embeddings, labels: np.ndarray, centroids: np.ndarray, cfg: PruneConfig,
             groups: Optional[np.ndarray] = None) -> PruneResult:
    """Samples to remove from the pool by cluster-wise SemDeDup under ``cfg``.

    Count mode with no cap, or a pool already within the cap, removes nothing.
    groups: (N,) int dataset of each sample, which ``thin: dataset`` needs.
    """
    if cfg.mode == "uniform":
        raise ValueError("prune.mode uniform draws without embeddings: lifelong.pruning.uniform.evict_uniform")
    n = len(labels)
    if cfg.mode in ("count", "quota") and (cfg.cap is None or n <= cfg.cap):
        empty = np.zeros(0, np.int64)
        return PruneResult(empty, np.zeros(0, np.float32), empty, empty, np.zeros(0, dtype=str))
    table = max_sim_table(embeddings, labels, centroids, cfg)
    if cfg.mode == "count":
        if cfg.thin == "dataset" and groups is None:
            raise ValueError("prune.thin=dataset needs each sample's dataset (groups)")
        return prune_by_count(table, cfg.cap, cfg.epsilon, embeddings, groups if cfg.thin == "dataset" else None)
    if cfg.mode == "quota":
        return prune_by_quota(table, cfg.cap, cfg.epsilon)
    return prune_by_epsilon(table, cfg.epsilon, embeddings)
