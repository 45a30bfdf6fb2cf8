"""Route each pseudo-skill cluster to one selector expert (docs/design.md step 4).

For cluster k and expert e, the histogram entropy H(k, e) is computed as follows:

1. Take e's scores of the samples in k; NaN is a missing score and is left out.
   No score left -> H = -inf (the expert can never win that cluster unless
   every expert is -inf there).
2. z-normalise: z = (s - mean) / std, population std (ddof = 0). A single
   sample or a constant score has std = 0; then every z is 0.
3. Histogram of z with ``n_bins`` equal-width bins on [-z_range, z_range]
   (numpy's convention: bins are half-open [a, b) except the last, which is
   closed). z outside the range falls in no bin.
4. p_i = count_i / (sum of counts); H = -sum_{p_i > 0} p_i log2 p_i, in bits.
   With no z in range H = 0 (this only happens with ``reference_bins``).

The chosen expert of a cluster is argmax_e H(k, e); ties go to the first
expert in the given order. An empty cluster has H = -inf for all experts and
gets expert 0.

``mode`` (ablations of routing; the table H is computed and reported in every
mode): ``entropy`` (default) is the rule above; ``random`` gives each cluster an
expert drawn uniformly from the candidates (the caller's generator);
``fixed`` gives every cluster ``expert``.

``reference_bins = True`` reproduces the Adapt-inf reference code for
comparison only: the bin edges are linspace(-z_range * std, z_range * std,
n_bins + 1) with the RAW std of the scores, applied to the z-scores, so H
depends on the scale of the score (a score in [0, 1] puts every z beyond the
edges, a score with std 100 puts every z in the centre bins). With std = 0 the
edges collapse and H = 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

MODES = ("entropy", "random", "fixed")


@dataclass
class RouteConfig:
    """Histogram-entropy routing.

    n_bins: histogram bins; 50 as in the paper.
    z_range: histogram support [-z_range, z_range] in standard deviations; 4
        keeps all but a Chebyshev-bounded <= 1/16 of any distribution.
    reference_bins: reproduce the reference code's raw-std bin edges (see the
        module docstring); for comparison only.
    mode: ``entropy`` (the paper's rule), or an ablation: ``random`` (a
        uniformly drawn candidate per cluster), ``fixed`` (``expert`` for
        every cluster).
    expert: the expert of ``mode: fixed``; one of the scored candidates.
    """

    n_bins: int = 50
    z_range: float = 4.0
    reference_bins: bool = False
    mode: Literal["entropy", "random", "fixed"] = "entropy"
    expert: Optional[str] = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"select.route.mode must be one of {MODES}, got {self.mode!r}")
        if (self.mode == "fixed") != (self.expert is not None):
            raise ValueError("select.route.expert is set with select.route.mode=fixed, and only then")


@dataclass
class RouteResult:
    """chosen: (K,) int64 index into ``experts`` per cluster; entropy: (K, E) float64 bits."""

    experts: list[str]
    chosen: np.ndarray
    entropy: np.ndarray

    def chosen_names(self) -> list[str]:
        return [self.experts[i] for i in self.chosen]


def histogram_entropy(scores: np.ndarray, cfg: RouteConfig) -> float:
    """H in bits of the z-normalised histogram of one expert's scores in one cluster."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[~np.isnan(s)]
    if s.size == 0:
        return float("-inf")
    std = s.std()
    z = (s - s.mean()) / std if std > 0 else np.zeros_like(s)
    if cfg.reference_bins:
        if std == 0:
            return 0.0
        edges = np.linspace(-cfg.z_range * std, cfg.z_range * std, cfg.n_bins + 1)
        counts, _ = np.histogram(z, bins=edges)
    else:
        counts, _ = np.histogram(z, bins=cfg.n_bins, range=(-cfg.z_range, cfg.z_range))
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum())


def route(labels: np.ndarray, scores: dict[str, np.ndarray], n_clusters: int, cfg: RouteConfig,
          rng: np.random.Generator | None = None) -> RouteResult:
    """Pick one expert per cluster.

    labels: (N,) cluster of each sample in [0, n_clusters).
    scores: expert name -> (N,) scores; the dict's order is the tie-break order.
    rng: the draws of ``mode: random`` (required there).
    """
    experts = list(scores)
    if not experts:
        raise ValueError("route needs at least one expert")
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_clusters + 1))
    table = np.full((n_clusters, len(experts)), -np.inf)  # (K, E)
    for e, name in enumerate(experts):
        s = np.asarray(scores[name], dtype=np.float64)
        if s.shape != labels.shape:
            raise ValueError(f"scores of {name!r} have shape {s.shape}, labels {labels.shape}")
        s_sorted = s[order]
        for k in range(n_clusters):
            table[k, e] = histogram_entropy(s_sorted[bounds[k]:bounds[k + 1]], cfg)
    if cfg.mode == "random":
        if rng is None:
            raise ValueError("select.route.mode=random needs a generator")
        chosen = rng.integers(0, len(experts), size=n_clusters).astype(np.int64)
    elif cfg.mode == "fixed":
        if cfg.expert not in experts:
            raise ValueError(f"select.route.expert {cfg.expert!r} is not among the scored candidates {experts}")
        chosen = np.full(n_clusters, experts.index(cfg.expert), dtype=np.int64)
    else:
        chosen = np.argmax(table, axis=1).astype(np.int64)  # first maximum wins ties
    return RouteResult(experts=experts, chosen=chosen, entropy=table)
