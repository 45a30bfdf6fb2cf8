"""Evidence over seeds: one result file per (strategy, seed), intervals over seeds and questions together.

A strategy's numbers move with its run seed (k-means starts, CCS draws, data
order, LoRA init) and with the held-out questions that happen to be asked. A
*result* keeps what a finished run needs to be compared later, without its
run directory: the per-question scores of every round (rows of the accuracy
matrix before averaging), the run's cost figures and a digest of its config.

    res = result_from_run(run_dir, strategy="adapt_inf", seed=1, config_sha=...)
    save_result(res, results_dir)                     # <results_dir>/<strategy>_s<seed>.json
    by_strategy = group(load_results(results_dir))   # strategy -> [result, ...] (seed order)
    draws = seed_question_bootstrap(by_strategy, n=1000)   # strategy -> {metric: (n,) draws}
    history = mean_history("random", by_strategy["random"])  # one dashboard line over its seeds
    # metrics: every registered CL metric that needs no reference run (lifelong.evaluation.metrics),
    # pooled_acc and diag.<i> (task i right after its round)

Point estimates are the mean over seeds of each seed's metric. One bootstrap
resample draws seeds with replacement (the same seed positions for every
strategy whose seed list is the same, so differences are paired by seed) and
each task's questions with replacement (the same for every strategy and seed),
then averages the resampled runs' metrics over the drawn seeds.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from lifelong.evaluation.bootstrap import accuracy_matrix, question_scores
from lifelong.evaluation.metrics import METRICS, diagonal, learning_accuracy, without_reference

RESULT_VERSION = 1


def result_from_run(run_dir: Path, strategy: str, seed: int, config_sha: str, extra: dict | None = None) -> dict:
    """The result record of a finished run: per-question scores of every round plus ``extra`` figures."""
    from lifelong.evaluation.history import load_history

    h = load_history(run_dir)
    n_rounds = h.accuracy_matrix().shape[0] - 1
    scores = question_scores(run_dir, h.tasks, n_rounds)
    return {
        "version": RESULT_VERSION, "strategy": strategy, "seed": seed, "config_sha": config_sha,
        "tasks": h.tasks,
        "learned": h.learned(),  # per task, the round that taught it first (None: task i in round i + 1)
        "columns": [dataclasses.asdict(c) for c in h.columns],  # where each task came from
        "questions": {t: ids for t, (ids, _) in scores.items()},
        # (rounds + 1) x questions per task; null = round not evaluated
        "scores": {t: [[None if not np.isfinite(x) else float(x) for x in row] for row in m]
                   for t, (_, m) in scores.items()},
        **(extra or {}),
    }


def result_path(results_dir: Path, strategy: str, seed: int) -> Path:
    return Path(results_dir) / f"{strategy}_s{seed}.json"


def save_result(res: dict, results_dir: Path) -> Path:
    """Write the result atomically; returns its path."""
    path = result_path(results_dir, res["strategy"], res["seed"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=None, separators=(",", ":")) + "\n")
    os.replace(tmp, path)
    return path


def load_results(results_dir: Path) -> list[dict]:
    """Every result file under ``results_dir`` (unknown versions are an error)."""
    out = []
    for p in sorted(Path(results_dir).glob("*_s*.json")):
        res = json.loads(p.read_text())
        if res.get("version") != RESULT_VERSION:
            raise ValueError(f"{p}: result version {res.get('version')} (this code reads {RESULT_VERSION})")
        out.append(res)
    return out


def group(results: list[dict]) -> dict[str, list[dict]]:
    """strategy -> its results in seed order."""
    out: dict[str, list[dict]] = {}
    for r in sorted(results, key=lambda r: (r["strategy"], r["seed"])):
        out.setdefault(r["strategy"], []).append(r)
    return out


def score_tensor(res: dict) -> list[np.ndarray]:
    """Per task, the (rounds + 1, questions) score matrix of a result (NaN = not evaluated)."""
    return [np.array([[np.nan if x is None else x for x in row] for row in res["scores"][t]], dtype=float)
            .reshape(len(res["scores"][t]), -1) for t in res["tasks"]]


def matrix(res: dict) -> np.ndarray:
    """The accuracy matrix (rounds + 1, tasks) of a result."""
    per_task = {t: (res["questions"][t], m) for t, m in zip(res["tasks"], score_tensor(res))}
    return accuracy_matrix(per_task, res["tasks"])


def pooled_accuracy(scores: list[np.ndarray], row: int, seen) -> float:
    """Correct answers over questions asked, over the tasks ``seen`` (a count: the first ones; or indices),
    in row ``row``."""
    num = den = 0.0
    for m in scores[:seen] if isinstance(seen, int) else [scores[i] for i in seen]:
        v = m[row]
        v = v[np.isfinite(v)]
        num, den = num + v.sum(), den + v.size
    return num / den if den else float("nan")


def metrics_of(scores: list[np.ndarray], learned=None) -> dict[str, float]:
    """The registered CL metrics (no reference), pooled final accuracy and the diagonal
    (``diag.<i>``, task i right after the round that taught it, for every task taught so far) of
    per-task score matrices; ``learned`` as in :mod:`lifelong.evaluation.metrics`."""
    a = np.stack([m.mean(axis=1) if m.shape[1] else np.full(m.shape[0], np.nan) for m in scores], axis=1)
    out = {k: float(METRICS[k].fn(a, None, learned)) for k in without_reference()}
    last = a.shape[0] - 1
    lr = np.arange(1, len(scores) + 1) if learned is None else np.asarray(learned)
    out["pooled_acc"] = pooled_accuracy(scores, last, list(np.flatnonzero(lr <= last)) if last >= 1 else [])
    defined = np.isfinite(learning_accuracy(a, None, learned))  # no diagonal for a run that trains once, at the end
    taught = np.flatnonzero((lr >= 1) & (lr <= last))
    out.update({f"diag.{i}": float(x) if defined else float("nan") for i, x in zip(taught, diagonal(a, learned))})
    return out


def check_comparable(by_strategy: dict[str, list[dict]]) -> None:
    """Every result must cover the same tasks, rounds and questions; otherwise ValueError."""
    first = next(r for rs in by_strategy.values() for r in rs)
    for rs in by_strategy.values():
        for r in rs:
            if r["tasks"] != first["tasks"] or r["questions"] != first["questions"]:
                raise ValueError(f"{r['strategy']} seed {r['seed']} answered other tasks or questions than "
                                 f"{first['strategy']} seed {first['seed']}; cannot compare them")
            if [len(v) for v in r["scores"].values()] != [len(v) for v in first["scores"].values()]:
                raise ValueError(f"{r['strategy']} seed {r['seed']} has another number of rounds")


def point_estimates(by_strategy: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """strategy -> mean over its seeds of each metric."""
    out = {}
    for name, rs in by_strategy.items():
        per_seed = [metrics_of(score_tensor(r), r.get("learned")) for r in rs]
        out[name] = {k: float(_nanmean(np.array([m[k] for m in per_seed]))) for k in per_seed[0]}
    return out


def _nanmean(x: np.ndarray, axis=None):
    """Mean of the finite values (NaN where there are none), without warnings."""
    x = np.asarray(x, dtype=float)
    ok = np.isfinite(x)
    count = ok.sum(axis=axis)
    total = np.where(ok, x, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def seed_question_bootstrap(by_strategy: dict[str, list[dict]], n: int = 1000, seed: int = 0,
                            ) -> dict[str, dict[str, np.ndarray]]:
    """strategy -> {metric: (n,) resampled means over seeds} (see the module docstring)."""
    check_comparable(by_strategy)
    rng = np.random.default_rng(seed)
    first = next(iter(by_strategy.values()))[0]
    q_draws = [rng.integers(0, max(len(first["questions"][t]), 1), size=(n, len(first["questions"][t])))
               for t in first["tasks"]]
    seed_draws: dict[tuple, np.ndarray] = {}
    out = {}
    for name, rs in by_strategy.items():
        key = tuple(r["seed"] for r in rs)
        if key not in seed_draws:  # strategies run on the same seeds share their seed draws: paired by seed
            seed_draws[key] = rng.integers(0, len(rs), size=(n, len(rs)))
        tensors = [score_tensor(r) for r in rs]
        # per seed, per resample: resampled per-task score matrices -> metrics
        per_seed = [[metrics_of([m[:, q[b]] if m.shape[1] else m for m, q in zip(ts, q_draws)], r.get("learned"))
                     for b in range(n)] for ts, r in zip(tensors, rs)]
        out[name] = {}
        for k in per_seed[0][0]:
            vals = np.array([[per_seed[s][b][k] for b in range(n)] for s in range(len(rs))])  # (seeds, n)
            picked = vals[seed_draws[key].T, np.arange(n)]  # (seeds drawn, n)
            out[name][k] = _nanmean(picked, axis=0)
    return out


def mean_history(strategy: str, results: list[dict]) -> "RunHistory":
    """One dashboard line for a strategy, from its result files alone (no run directory needed).

    The accuracy matrix is the mean over the seeds (a cell evaluated in no
    seed stays unevaluated); each round's pool size, selected count and
    selection / training seconds are means over the seeds too. Result files
    keep neither loss curves nor clusters, so the line has none.
    """
    from lifelong.evaluation.history import RoundRecord, RunHistory, TaskColumn

    if not results:
        raise ValueError(f"no results of {strategy!r}")
    tasks = results[0]["tasks"]
    if any(r["tasks"] != tasks for r in results):
        raise ValueError(f"results of {strategy!r} differ in their tasks")
    mean = _nanmean(np.stack([matrix(r) for r in results]), axis=0)  # (rounds + 1, T) over the seeds
    seeds = ", ".join(str(r["seed"]) for r in results)
    columns = [TaskColumn(**c) for c in results[0].get("columns", [])]
    h = RunHistory(run=f"{strategy} (seed{'s' if len(results) > 1 else ''} {seeds})", strategy=strategy, tasks=tasks,
                   columns=columns)
    for t, row in enumerate(mean):
        h.set_accuracy_row(t, row)
    per_round = [{x["round"]: x for x in r["costs"].get("per_round", [])} for r in results]
    for t in sorted(set().union(*per_round)):
        xs = [pr[t] for pr in per_round if t in pr]
        h.set_round(RoundRecord(
            round=t, dataset=tasks[t - 1] if t <= len(tasks) else "",
            pool_size=int(round(np.mean([x["pool"] for x in xs]))),
            selected=int(round(np.mean([x["selected"] for x in xs]))),
            stage_seconds={"select": float(np.mean([x["selection_s"] for x in xs])),
                           "train": float(np.mean([x["train_s"] for x in xs]))}))
    return h
