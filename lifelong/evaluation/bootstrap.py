"""How sure are the numbers: a paired bootstrap over the held-out questions.

A run's accuracy matrix comes from a few dozen questions per task, so its
metrics carry sampling noise. Resampling each task's questions with
replacement (the same draw for every round and every run, as every run answers
the same questions) and recomputing the metrics from the per-question scores
in ``predictions.jsonl`` gives a distribution per run and, paired, for the
difference between two runs.

    runs = {"adapt_inf": Path(...), "random": Path(...)}
    draws = paired_bootstrap(runs, n=1000, seed=0)      # name -> {metric: (n,) array}
    interval(draws["adapt_inf"]["avg_acc"])             # (2.5%, 97.5%)
    interval(draws["adapt_inf"]["avg_acc"] - draws["random"]["avg_acc"])
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lifelong.evaluation.metrics import METRICS, headline
from lifelong.layout import RunLayout


def run_predictions(run_dir: Path, t: int) -> list[Path]:
    """Where a run wrote round ``t``'s per-question predictions, oldest first.

    Its own evaluation, then the cells later rounds' eval stages and
    ``lifelong suite add`` measured for that row (tasks that arrived after
    round ``t``, or whose question set grew since), in the order they were
    measured.
    """

    layout = RunLayout(run_dir)
    later = []
    for d in layout.rounds.glob("*/eval/backfill") if layout.rounds.is_dir() else ():
        later.append((int(d.parts[-3]), 0, d / f"round_{t}.jsonl"))
    for d in layout.rounds.glob("*/suites/*") if layout.rounds.is_dir() else ():
        later.append((int(d.parts[-3]), 1, d / f"round_{t}.jsonl"))
    return [layout.predictions(t), *(p for _, _, p in sorted(later) if p.exists())]


def question_scores(run_dir: Path, tasks: list[str], n_rounds: int,
                    where=run_predictions) -> dict[str, tuple[list[str], np.ndarray]]:
    """task -> (question ids, sorted; (n_rounds + 1, n_questions) scores, NaN rows for rounds not evaluated).

    where(run_dir, t) -> the predictions file(s) of round t, oldest first
    (default: the run's own). Where a round's task was measured more than
    once, the latest file counts; a round that answered other questions than
    the task's last measured round is stale (measured before the task's
    question set grew, lifelong/evaluation/columns.py) and counts as not
    evaluated, as in the run's accuracy matrix.
    """
    rows: list[dict[str, dict[str, float]]] = []
    for t in range(n_rounds + 1):
        paths = where(run_dir, t)
        per_task: dict[str, dict[str, float]] = {}
        for path in [paths] if isinstance(paths, Path) else paths:
            if path.exists():
                found: dict[str, dict[str, float]] = {}
                for line in path.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        p = json.loads(line)
                        found.setdefault(p["task"], {})[p["id"]] = float(p["score"])
                per_task.update(found)  # a later measurement replaces the task's earlier one
        rows.append(per_task)
    out = {}
    for task in tasks:
        ids = next((sorted(r[task]) for r in reversed(rows) if task in r), [])
        m = np.full((n_rounds + 1, len(ids)), np.nan)
        for t, r in enumerate(rows):
            if task in r and sorted(r[task]) == ids:
                m[t] = [r[task][q] for q in ids]
        out[task] = (ids, m)
    return out


def accuracy_matrix(scores: dict[str, tuple[list[str], np.ndarray]], tasks: list[str]) -> np.ndarray:
    """(rounds + 1, tasks) mean score per task from :func:`question_scores` (NaN where not evaluated)."""
    cols = [scores[t][1].mean(axis=1) if scores[t][1].shape[1] else np.full(scores[t][1].shape[0], np.nan)
            for t in tasks]
    return np.stack(cols, axis=1)


def paired_bootstrap(runs: dict[str, Path], n: int = 1000, seed: int = 0,
                     metrics: tuple[str, ...] | None = None,
                     where=run_predictions) -> dict[str, dict[str, np.ndarray]]:
    """Every run's metrics on ``n`` resamples of the questions (the same resamples for all runs).

    Runs must cover the same tasks and rounds and have answered the same
    questions (same stream, same ``eval`` settings); otherwise ValueError.
    ``metrics``: names of registered metrics (default: the headline ones);
    ``where`` as in :func:`question_scores`.
    """
    from lifelong.evaluation.history import load_history

    metrics = tuple(m.name for m in headline()) if metrics is None else metrics
    hists = {name: load_history(d) for name, d in runs.items()}
    first = next(iter(hists.values()))
    tasks, n_rounds = first.tasks, first.accuracy_matrix().shape[0] - 1
    for name, h in hists.items():
        if h.tasks != tasks or h.accuracy_matrix().shape[0] - 1 != n_rounds:
            raise ValueError(f"run {name} covers other tasks or rounds than {next(iter(hists))}; cannot pair them")
    scores = {name: question_scores(d, tasks, n_rounds, where) for name, d in runs.items()}
    ref = scores[next(iter(scores))]
    for name, s in scores.items():
        for task in tasks:
            if s[task][0] != ref[task][0]:
                raise ValueError(f"run {name} answered other {task} questions than {next(iter(scores))}")
    rng = np.random.default_rng(seed)
    draws = {task: rng.integers(0, max(len(ref[task][0]), 1), size=(n, len(ref[task][0]))) for task in tasks}
    out = {}
    for name, s in scores.items():
        a = np.full((n, n_rounds + 1, len(tasks)), np.nan)  # (resample, round, task)
        for i, task in enumerate(tasks):
            m = s[task][1]
            if m.shape[1]:
                a[:, :, i] = m[:, draws[task]].mean(axis=2).T  # (rounds+1, n, q) -> (n, rounds+1)
        learned = hists[name].learned()
        out[name] = {k: np.array([METRICS[k].fn(a[b], None, learned) for b in range(n)]) for k in metrics}
    return out


def interval(x: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite draws (NaN, NaN when none)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if not x.size:
        return float("nan"), float("nan")
    lo, hi = np.quantile(x, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
