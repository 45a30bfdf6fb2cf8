"""Uniform eviction: the pool cut down to its cap by a seeded uniform draw (``prune.mode: uniform``).

The pruning of the ``random_prune`` baseline, so that a method is compared
with a uniform draw at the same cap as well as the same budget. It needs no
embeddings and no clusters; the ledger records each removal with reason
``uniform``.
"""
from __future__ import annotations

import numpy as np

from lifelong.pruning.semdedup import PruneResult


def evict_uniform(n: int, cap: int | None, seed: int) -> PruneResult:
    """Remove ``n - cap`` of ``n`` samples drawn uniformly (seeded); nothing when ``cap`` is None
    or the pool is within it. Cluster and reference are -1, the similarity -inf (none measured)."""
    drop = max(0, n - cap) if cap is not None else 0
    index = np.sort(np.random.default_rng(seed).choice(n, size=drop, replace=False)).astype(np.int64)
    none = np.full(drop, -1, dtype=np.int64)
    return PruneResult(index, np.full(drop, -np.inf, dtype=np.float32), none, none.copy(),
                       np.full(drop, "uniform"))
