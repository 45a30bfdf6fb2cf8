"""Evaluation: the model's answers on every task's held-out split -> one accuracy-matrix row.

A task is a column of the accuracy matrix, named by held-out records' ``task``
labels (:mod:`lifelong.evaluation.columns` says which tasks a run has; a
dataset is what arrives and is trained on). For each task, in the order
given, the pool's held-out samples (split
``EvalConfig.split``, any status: held-out samples are never pruned, but a
pruned one would still be a fair question) are answered by greedy generation
and each answer is scored against the sample's reference answer, the last
assistant turn (:meth:`Sample.prompt_and_answer`); the metric also gets the
prompt before it as ``question`` (``mc_letter`` reads its options there). A
multi-turn sample is answered given all turns before its last assistant turn;
the models layer's ``generate`` does that cut, so samples are passed whole.

The model is any object with
``generate(samples, image_loader, max_new_tokens=, batch_size=) -> list[str]``
(one answer text per sample, greedy); when it exposes its ``torch.nn.Module``
as ``.model`` (or is one), evaluation runs it in eval mode under
``torch.no_grad()`` and puts every submodule's train/eval flag back afterwards.

``lifelong eval --run DIR [--round N]`` (:mod:`lifelong.commands.eval`)
re-evaluates the saved adapter of a round of a run directory.
"""
from __future__ import annotations

import json
import math
import os
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Sequence

import numpy as np

from lifelong.evaluation import scoring
from lifelong.evaluation.suites import SuiteConfig, suite_problems


@dataclass
class EvalConfig:
    """How evaluation runs.

    ``max_new_tokens``: generated tokens per answer; the stream's answers are a
    few words, so 8 keeps evaluation cheap (raise it for free-text tasks).
    ``batch_size``: samples per ``generate`` call (also the progress-bar step).
    ``max_samples_per_task``: cap on held-out samples per task, for speed (None
    = all). The capped subset is a seeded random draw kept in pool order; it
    depends only on ``seed``, the task name and the task's held-out samples, so
    every round of a run scores the same questions and the matrix compares like
    with like. ``default_metric``: answer metric (a name in
    :data:`scoring.ANSWER_METRICS`) of tasks not in ``task_metrics``
    (task -> metric name; a task not named there takes the metric of the
    dataset or suite that brought it). ``split``: the pool split that holds
    the held-out samples. ``backfill``: which earlier rows an arriving round
    measures for the tasks it adds or whose questions it adds to (``all``,
    or ``fwt``: rows 0 and t-1; see :mod:`lifelong.evaluation.columns`).
    ``suites``: fixed test sets evaluated after every round
    (:mod:`lifelong.evaluation.suites`).
    """

    max_new_tokens: int = 8
    batch_size: int = 16
    max_samples_per_task: Optional[int] = None
    seed: int = 0
    default_metric: str = "exact_match"
    task_metrics: dict[str, str] = field(default_factory=dict)
    split: str = "test"
    backfill: Literal["all", "fwt"] = "all"
    suites: list[SuiteConfig] = field(default_factory=list)

    def metric_for(self, task: str) -> str:
        return self.task_metrics.get(task, self.default_metric)

    def validate(self) -> None:
        """Raise ``ValueError`` for a metric name that is not registered or a non-positive size."""
        for name in [self.default_metric, *self.task_metrics.values()]:
            if name not in scoring.ANSWER_METRICS:
                raise ValueError(f"unknown answer metric {name!r} (known: {', '.join(sorted(scoring.ANSWER_METRICS))})")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("eval batch_size and max_new_tokens must be >= 1")
        if self.max_samples_per_task is not None and self.max_samples_per_task < 1:
            raise ValueError("eval max_samples_per_task must be >= 1 or null (0 leaves every column without a question)")
        problems = suite_problems(self.suites)
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class Prediction:
    """One held-out sample's answer: ``score`` is the task metric's value in [0, 1]."""

    task: str
    id: str
    prediction: str
    reference: str
    score: float
    metric: str

    @property
    def correct(self) -> bool:
        """Full marks (exact match, or token F1 = 1)."""
        return self.score >= 1.0


@dataclass
class EvalResult:
    """Per-task accuracy (NaN = the task has no held-out samples) and every prediction.

    ``accuracy[task]`` is the mean answer metric over the task's evaluated
    samples, ``counts[task]`` how many were evaluated, ``seconds`` the wall time.
    """

    tasks: list[str]
    accuracy: dict[str, float]
    counts: dict[str, int]
    metrics: dict[str, str]
    predictions: list[Prediction] = field(default_factory=list)
    seconds: float = 0.0

    def row(self, tasks: Optional[Sequence[str]] = None) -> list[float]:
        """Accuracies in the order of ``tasks`` (default: evaluated order), NaN for a task not evaluated.

        This is the accuracy-matrix row for ``RunHistory.set_accuracy_row``.
        """
        return [self.accuracy.get(t, float("nan")) for t in (self.tasks if tasks is None else tasks)]

    def table(self) -> str:
        """A plain-text per-task table: task, metric, samples, accuracy (%)."""
        width = max([len("task"), *(len(t) for t in self.tasks)])
        lines = [f"{'task':<{width}}  {'metric':<11}  {'n':>6}  {'acc %':>6}"]
        for t in self.tasks:
            acc = self.accuracy[t]
            shown = "-" if math.isnan(acc) else f"{100 * acc:.1f}"
            lines.append(f"{t:<{width}}  {self.metrics[t]:<11}  {self.counts[t]:>6}  {shown:>6}")
        finite = [a for a in self.accuracy.values() if not math.isnan(a)]
        if finite:
            lines.append(f"{'mean':<{width}}  {'':<11}  {sum(self.counts.values()):>6}  {100 * np.mean(finite):>6.1f}")
        return "\n".join(lines)


def capped(samples: list, cap: Optional[int], seed: int, task: str) -> list:
    """At most ``cap`` of ``samples``: a seeded random subset in the original order.

    The draw is seeded by ``(seed, crc32(task))``, so it does not depend on
    which other tasks are evaluated or in what order.
    """
    if cap is None or len(samples) <= cap:
        return list(samples)
    rng = np.random.default_rng([seed, zlib.crc32(task.encode("utf-8"))])
    keep = np.sort(rng.choice(len(samples), size=cap, replace=False))
    return [samples[i] for i in keep]


def _module_of(loaded):
    """The ``torch.nn.Module`` behind ``loaded`` (itself or ``.model``), or None."""
    import torch

    if isinstance(loaded, torch.nn.Module):
        return loaded
    module = getattr(loaded, "model", None)
    return module if isinstance(module, torch.nn.Module) else None


@contextmanager
def inference_mode_of(loaded):
    """Eval mode and no autograd for the duration; every submodule's mode is put back after."""
    import torch

    module = _module_of(loaded)
    modes = [(m, m.training) for m in module.modules()] if module is not None else []
    if module is not None:
        module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, training in modes:
            m.training = training


def evaluate_tasks(loaded, pool, tasks: list[str], cfg: EvalConfig, progress: bool = True) -> EvalResult:
    """Answer and score every task's held-out samples; see the module docstring.

    ``loaded``: the model (``generate`` as described above); ``pool``: a
    :class:`lifelong.data.pool.Pool` (samples and ``load_image``); ``tasks``:
    task names, each evaluated once in this order. Returns per-task accuracy
    (NaN for a task without held-out samples) and per-sample predictions.
    """
    from tqdm.auto import tqdm

    cfg.validate()
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks are not unique: {tasks}")
    start = time.perf_counter()
    # Ids first (an index lookup on (split, task)), then only the capped draw's rows.
    per_task = {t: pool.get(capped(pool.ids(status=None, split=cfg.split, task=t), cfg.max_samples_per_task,
                                   cfg.seed, t), status=None)
                for t in tasks}
    total = sum(len(s) for s in per_task.values())
    result = EvalResult(tasks=list(tasks), accuracy={}, counts={}, metrics={})
    bar = tqdm(total=total, desc="eval", unit="sample", disable=not progress)
    try:
        with inference_mode_of(loaded):
            for task in tasks:
                samples = per_task[task]
                metric = cfg.metric_for(task)
                preds: list[str] = []
                bar.set_postfix_str(task)
                for b in range(0, len(samples), cfg.batch_size):
                    chunk = samples[b : b + cfg.batch_size]
                    out = loaded.generate(chunk, pool.load_image, max_new_tokens=cfg.max_new_tokens,
                                          batch_size=cfg.batch_size)
                    if len(out) != len(chunk):
                        raise RuntimeError(f"generate returned {len(out)} answers for {len(chunk)} samples")
                    preds.extend(out)
                    bar.update(len(chunk))
                pairs = [s.prompt_and_answer() for s in samples]
                questions, refs = [q for q, _ in pairs], [a for _, a in pairs]
                fn = scoring.ANSWER_METRICS[metric]
                for s, p, r, q in zip(samples, preds, refs, questions):
                    result.predictions.append(Prediction(task, s.id, p, r, float(fn(p, r, question=q)), metric))
                result.accuracy[task] = scoring.score(metric, preds, refs, questions)
                result.counts[task] = len(samples)
                result.metrics[task] = metric
    finally:
        bar.close()
    result.seconds = time.perf_counter() - start
    return result


def write_predictions(result: EvalResult, path: str | Path) -> Path:
    """Write one JSON line per prediction: task, id, prediction, reference, correct, score, metric."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for p in result.predictions:
            rec = {"task": p.task, "id": p.id, "prediction": p.prediction, "reference": p.reference,
                   "correct": p.correct, "score": p.score, "metric": p.metric}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path
