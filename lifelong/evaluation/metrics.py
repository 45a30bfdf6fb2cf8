"""Continual-learning metrics as pure numpy functions of the accuracy matrix.

The accuracy matrix ``a`` has shape ``(R + 1, T)``:

* row 0 holds the accuracies *before any training* (the base model);
  row ``t`` (``1 <= t <= R``) holds them *after round t*;
* column ``i`` (0-based) is task ``i`` in arrival order. ``learned[i]`` is the
  round that first taught it (``L_i``); by default ``L_i = i + 1`` (one task
  per round, a full run of ``T`` tasks has ``R = T`` rounds), and
  ``a[L_i, i]`` is "task i just after it was learned". ``L_i = 0`` marks a
  task no round teaches (an evaluation suite): it counts as seen from round 1
  on (average accuracy, forgetting, relative gain) and has no "just learned"
  cell (no BWT, FWT or learning-accuracy term);
* values are accuracies in ``[0, 1]``; ``NaN`` marks a cell that was not
  evaluated (a term that needs it is left out of the mean).

A run in progress has fewer rows; every metric is then taken "as of the last
row" ``R``: the tasks seen so far are those with ``L_i <= R`` and the final row
is ``a[R]``. Evaluating a metric on the prefix ``a[: t + 1]`` gives
its value after round ``t`` (:func:`per_round`).

Translation from the 1-based notation of GEM (Lopez-Paz & Ranzato, 2017),
where ``R_{j,i}`` is the accuracy on task ``i`` after learning task ``j`` and
``b_i`` the accuracy of the untrained model: ``R_{j,i} = a[j, i - 1]`` and
``b_i = a[0, i - 1]``. So with ``T`` the last row index:

With the default ``L_i = i + 1``:

* average accuracy ``A_t = mean_{i < min(t, T)} a[t, i]``
* forgetting ``F = mean_{i < R-1} max_{0 <= t <= R-1} (a[t, i] - a[R, i])``
  (docs/design.md: every earlier row counts, row 0 included, so a skill the base
  model had and lost counts as forgotten; Chaudhry et al. 2018 start at row
  ``i + 1``)
* backward transfer ``BWT = mean_{i < R-1} (a[R, i] - a[i + 1, i])``
* forward transfer ``FWT = mean_{1 <= i <= min(R, T-1)} (a[i, i] - a[0, i])``
  (accuracy on task i just before it arrives, minus the untrained model's)
* learning accuracy ``LA = mean_{i < min(R, T)} a[i + 1, i]`` (Riemer et al.
  2019: each task right after the round that learned it; the diagonal)
* relative gain ``RG = 100 * sum_{i < min(R, T)} a[R, i] / sum_{i < min(R, T)} ref[i]`` (pooled)

In general ``i < min(t, T)`` reads "L_i <= t", ``i < R - 1`` reads
"L_i < R", ``a[i + 1, i]`` reads ``a[L_i, i]`` and FWT's ``a[i, i]`` reads
``a[L_i - 1, i]`` (over ``2 <= L_i <= R + 1``).

Adding a metric: write ``fn(a, reference=None, learned=None) -> float`` and
decorate it with ``@register("name")``. Every consumer iterates :data:`METRICS`:
the dashboard, trackers and result files show all of them; the model card, the
comparison's table and the paired bootstrap show the ``headline`` ones, under
their ``label`` / ``short`` names. No consumer lists metrics; one names a
metric only to judge it (the comparison's gate and targets on ``avg_acc`` and
``forgetting``, the demo's goal on ``learning_acc``).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np


def _as_matrix(a) -> np.ndarray:
    """``a`` as a float (R + 1, T) array; a single row is row 0 only."""
    m = np.asarray(a, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"accuracy matrix must be 2-D (rounds + 1, tasks), got shape {m.shape}")
    return m


def _mean(values) -> float:
    """Mean of the finite values; NaN when there are none (no warning)."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _last_round(m: np.ndarray) -> int:
    return m.shape[0] - 1


def _learned(m: np.ndarray, learned) -> np.ndarray:
    """``L_i`` per column, shape (T,): the round that first taught task i, 0 = none (a suite)."""
    if learned is None:
        return np.arange(1, m.shape[1] + 1)
    out = np.asarray(learned, dtype=int)
    if out.shape != (m.shape[1],):
        raise ValueError(f"learned has {out.shape} rounds, the matrix has {m.shape[1]} tasks")
    return out


def _seen(m: np.ndarray, t: int, learned=None) -> np.ndarray:
    """Indices of the tasks seen after round ``t``: ``L_i <= t`` (none after round 0)."""
    if t < 1:
        return np.arange(0)
    return np.flatnonzero(_learned(m, learned) <= t)


def average_accuracy_at(a, t: int, learned=None) -> float:
    """``A_t``: mean of ``a[t, i]`` over the tasks seen after round ``t``.

    Round 0 has seen no task, so ``A_0`` is NaN.
    """
    m = _as_matrix(a)
    if not 0 <= t <= _last_round(m):
        raise IndexError(f"round {t} is not a row of a matrix with rounds 0..{_last_round(m)}")
    return _mean(m[t, _seen(m, t, learned)])


@dataclasses.dataclass(frozen=True)
class Metric:
    """A scalar metric of the accuracy matrix.

    ``fn(a, reference)`` returns a float; ``higher_is_better`` tells the
    dashboard how to read it; ``needs_reference`` metrics get the reference
    run's accuracies and are NaN without one.

    ``headline`` metrics are the few shown where a consumer shows a subset (the
    model card, the comparison's table, the paired bootstrap's default), in
    registration order: ``label`` names one on the model card, ``short`` heads
    its column in the comparison's table, ``interval`` puts its 95% interval
    next to it there, and ``hub_id`` is the name the card's front matter lists
    it under (the Hugging Face hub's metric id where one fits; default: ``name``).
    """

    name: str
    fn: Callable[..., float]
    higher_is_better: bool = True
    needs_reference: bool = False
    description: str = ""
    headline: bool = False
    label: str = ""
    short: str = ""
    interval: bool = False
    hub_id: str = ""


METRICS: dict[str, Metric] = {}


def register(name: str, *, higher_is_better: bool = True, needs_reference: bool = False, headline: bool = False,
             label: str = "", short: str = "", interval: bool = False, hub_id: str = ""):
    """Decorator registering ``fn(a, reference=None, learned=None) -> float`` under ``name``.

    ``label``, ``short`` and ``hub_id`` default to ``name``; the other keywords
    as in :class:`Metric`.
    """

    def deco(fn):
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        METRICS[name] = Metric(name, fn, higher_is_better, needs_reference, doc[0] if doc else "", headline,
                               label or name, short or name, interval, hub_id or name)
        return fn

    return deco


def headline() -> list[Metric]:
    """The headline metrics, in registration order."""
    return [m for m in METRICS.values() if m.headline]


def without_reference() -> list[str]:
    """Names of the metrics a run's own accuracy matrix defines (no reference run), in registration order."""
    return [name for name, m in METRICS.items() if not m.needs_reference]


@register("avg_acc", headline=True, label="Average accuracy", short="final avg acc", interval=True,
          hub_id="accuracy")
def average_accuracy(a, reference=None, learned=None) -> float:
    """Average accuracy A_R over the tasks seen so far, after the last round."""
    m = _as_matrix(a)
    if m.shape[0] == 0:
        return float("nan")
    return average_accuracy_at(m, _last_round(m), learned)


@register("forgetting", higher_is_better=False, headline=True, label="Forgetting", interval=True)
def forgetting(a, reference=None, learned=None) -> float:
    """Forgetting: mean over earlier tasks of the drop from their best accuracy to now.

    ``F = mean_{i < R-1} max_{0 <= t <= R-1} (a[t, i] - a[R, i])`` with ``R``
    the last row (docs/design.md step 9). Every earlier row counts, row 0 (the base
    model) and the rows before task ``i`` arrived included: a skill the base
    model had and training lost is forgetting too. The task learned in the
    last round is left out (it cannot have been forgotten yet). NaN cells are
    skipped inside the max; a task whose terms are all NaN, or that was never
    evaluated after a training round before the last (rows 1..R-1 all NaN: a
    run that trains once, at the end), is left out of the mean.
    """
    m = _as_matrix(a)
    r = _last_round(m)
    terms = []
    for i in np.flatnonzero(_learned(m, learned) < r):
        if not np.isfinite(m[1:r, i]).any():
            continue
        past = m[:r, i]
        past = past[np.isfinite(past)]
        if past.size and np.isfinite(m[r, i]):
            terms.append(past.max() - m[r, i])
    return _mean(terms)


@register("bwt", headline=True, label="Backward transfer (BWT)", short="BWT")
def backward_transfer(a, reference=None, learned=None) -> float:
    """Backward transfer (GEM): mean over earlier tasks of accuracy now minus just after learning.

    ``BWT = mean_{1 <= L_i < R} (a[R, i] - a[L_i, i])``; negative = forgetting.
    """
    m = _as_matrix(a)
    r = _last_round(m)
    lr = _learned(m, learned)
    idx = np.flatnonzero((lr >= 1) & (lr < r))
    if not idx.size:
        return float("nan")
    return _mean(m[r, idx] - m[lr[idx], idx])


@register("fwt", headline=True, label="Forward transfer (FWT)", short="FWT")
def forward_transfer(a, reference=None, learned=None) -> float:
    """Forward transfer (GEM): mean over tasks of accuracy just before the round that teaches them minus the base model's.

    ``FWT = mean_{2 <= L_i <= R + 1} (a[L_i - 1, i] - a[0, i])`` (by default
    ``a[i, i] - a[0, i]`` over ``1 <= i <= min(R, T-1)``). Tasks taught in
    round 1 are left out (nothing was learned before them), and so are tasks
    no round teaches.
    """
    m = _as_matrix(a)
    lr = _learned(m, learned)
    idx = np.flatnonzero((lr >= 2) & (lr <= _last_round(m) + 1))
    if not idx.size:
        return float("nan")
    return _mean(m[lr[idx] - 1, idx] - m[0, idx])


@register("learning_acc")
def learning_accuracy(a, reference=None, learned=None) -> float:
    """Learning accuracy (LA): mean over tasks seen of the accuracy right after the round that learned them.

    ``LA = mean_{1 <= L_i <= R} a[L_i, i]``, the diagonal: how well each skill
    is learned in its own round, before later rounds can make it forgotten or
    better. NaN cells are left out; NaN for a run never evaluated after a
    training round before the last (one that trains once, at the end), where
    only the last task would count.
    """
    m = _as_matrix(a)
    r = _last_round(m)
    d = diagonal(m, learned)
    if not d.size or (r > 1 and not np.isfinite(m[1:r]).any()):
        return float("nan")
    return _mean(d)


def diagonal(a, learned=None) -> np.ndarray:
    """``a[L_i, i]`` for every task taught so far (``1 <= L_i <= R``), in column order (NaN where not
    evaluated); by default ``a[i + 1, i]``, shape ``(min(R, T),)``."""
    m = _as_matrix(a)
    lr = _learned(m, learned)
    idx = np.flatnonzero((lr >= 1) & (lr <= _last_round(m)))
    return m[lr[idx], idx]


@register("relative_gain", needs_reference=True)
def relative_gain(a, reference=None, learned=None) -> float:
    """Relative gain (%) against a reference run, on pooled accuracy: 100 * sum_i a[R, i] / sum_i ref[i].

    The sums run over the tasks seen so far. ``reference`` is the reference
    (multitask) run's final accuracies, shape ``(T,)``, or its whole accuracy
    matrix, whose last row is used. Every task counts, one whose reference is
    0 included: with the same number of questions per task this is the ratio of
    the two runs' correct answers, so a task where the reference got one
    question of twenty right cannot swing it. A task with a NaN on either side
    is left out of both sums; NaN when the reference's sum is 0.
    """
    if reference is None:
        return float("nan")
    m = _as_matrix(a)
    ref = np.asarray(reference, dtype=float)
    if ref.ndim == 2:
        ref = ref[-1]
    if ref.shape != (m.shape[1],):
        raise ValueError(f"reference has {ref.shape} accuracies, the matrix has {m.shape[1]} tasks")
    r = _last_round(m)
    seen = _seen(m, r, learned)
    if not seen.size:
        return float("nan")
    num, den = m[r, seen], ref[seen]
    ok = np.isfinite(num) & np.isfinite(den)
    total = den[ok].sum()
    return 100.0 * float(num[ok].sum() / total) if total > 0 else float("nan")


def per_round(name: str, a, reference=None, learned=None) -> np.ndarray:
    """Metric ``name`` after every round: entry ``t`` is the metric of ``a[: t + 1]``.

    Returns shape ``(R + 1,)``; entry 0 (nothing learned yet) is NaN for every
    registered metric.
    """
    m = _as_matrix(a)
    fn = METRICS[name].fn
    return np.array([fn(m[: t + 1], reference, learned) for t in range(m.shape[0])], dtype=float)


def compute_all(a, reference=None, learned=None) -> dict[str, float]:
    """Every registered metric after the last round, ``{name: value}`` (NaN where undefined)."""
    return {name: float(met.fn(a, reference, learned)) for name, met in METRICS.items()}


def summary(a, reference: Optional[np.ndarray] = None, learned=None) -> dict:
    """JSON-ready summary: final metrics and the per-round series (NaN -> None)."""

    def clean(x: float):
        return None if not np.isfinite(x) else float(x)

    return {
        "final": {k: clean(v) for k, v in compute_all(a, reference, learned).items()},
        "per_round": {k: [clean(x) for x in per_round(k, a, reference, learned)] for k in METRICS},
    }
