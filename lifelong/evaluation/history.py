"""The per-run record the dashboard reads: ``<run_dir>/metrics/history.json``.

Next to it, the accuracy matrix is also written as
``<run_dir>/metrics/accuracy_matrix.csv`` (header ``round,<task names...>``,
one line per evaluated round, empty cell = not evaluated), for spreadsheets.

JSON layout (``null`` = not evaluated)::

    {"schema_version": 1, "run": "demo", "strategy": "adapt_inf",
     "tasks": ["digits", "shapes"],                  # the columns: tasks, by first arrival
     "columns": [{"task": "digits", "source": "digits", "kind": "dataset",
                  "sources": ["digits"], "rounds": [1], "metric": "exact_match"}, ...],
     "accuracy": [[0.1, 0.2], [0.8, 0.3]],          # row 0 = before training
     "rounds": [{"round": 1, "dataset": "digits", "pool_size": 1200,
                 "selected": 300, "pruned": 0,
                 "train_loss": [[1, 2.3], [2, 2.1]],  # [step, loss]
                 "stage_seconds": {"sketch": 1.2},
                 "clusters": [{"id": 0, "size": 120, "expert": "el2n", "entropy": 4.1}]}]}

A run in progress has fewer accuracy rows (and round records) than tasks; the
loader accepts that. Files are written atomically (temp file + rename), so a
dashboard built while a round is running never reads half a file.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from pathlib import Path
from typing import Optional

import numpy as np

from lifelong.config import ConfigError, from_dict, to_dict
from lifelong.layout import RunLayout

SCHEMA_VERSION = 1
# Relative to the run directory (lifelong/layout.py names them).
HISTORY_FILE = RunLayout(Path()).history
MATRIX_FILE = RunLayout(Path()).accuracy_csv
METRICS_FILE = RunLayout(Path()).metrics_json


@dataclasses.dataclass
class ClusterRecord:
    """One pseudo-skill cluster of a round: its size (samples) and routed expert.

    ``entropy`` is the routing entropy (bits) of the chosen expert's score
    histogram inside the cluster; ``selected`` how many of its samples were
    drawn into the training set (``None`` if not recorded).
    """

    id: int
    size: int
    expert: str
    entropy: float = float("nan")
    selected: Optional[int] = None


@dataclasses.dataclass
class TaskColumn:
    """One column of the accuracy matrix: a task (skill), named by held-out records' ``task`` labels.

    ``source``: the dataset (``kind`` = ``"dataset"``) or evaluation suite
    (``"suite"``) whose held-out records brought the task first; ``sources``:
    every dataset or suite whose held-out records carry it, in arrival order;
    ``rounds``: the rounds whose arriving dataset carries it (training or
    held-out records), ascending; empty for a task no round teaches (a
    suite's). ``metric``: the answer metric of its questions.
    """

    task: str
    source: str
    kind: str = "dataset"
    sources: list[str] = dataclasses.field(default_factory=list)
    rounds: list[int] = dataclasses.field(default_factory=list)
    metric: str = "exact_match"

    @property
    def learned(self) -> int:
        """The round that first taught the task; 0 when none does (see :mod:`lifelong.evaluation.metrics`)."""
        return min(self.rounds) if self.rounds else 0


@dataclasses.dataclass
class RoundRecord:
    """What happened in one round ``round`` (1-based) when ``dataset`` arrived.

    ``pool_size``: active pool samples the selection saw; ``selected``: samples
    trained on; ``pruned``: samples removed from the pool this round;
    ``train_loss``: ``[step, loss]`` pairs (step counted within the round or
    globally, either is fine for the dashboard); ``stage_seconds``: wall
    time per stage in seconds.
    """

    round: int
    dataset: str
    pool_size: int = 0
    selected: int = 0
    pruned: int = 0
    train_loss: list[list[float]] = dataclasses.field(default_factory=list)
    stage_seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    clusters: list[ClusterRecord] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class RunHistory:
    """Everything the dashboard shows about one run.

    ``accuracy[t][i]``: accuracy on task ``tasks[i]`` after round ``t`` (row 0 =
    before training), ``None`` if not evaluated; see
    :mod:`lifelong.evaluation.metrics` for the indexing. ``columns``: where
    each task came from, one per task in the same order; empty in a history
    written before tasks were told apart from datasets (task ``i`` was then
    the dataset of round ``i + 1``).
    """

    run: str
    strategy: str
    tasks: list[str]
    accuracy: list[list[Optional[float]]] = dataclasses.field(default_factory=list)
    rounds: list[RoundRecord] = dataclasses.field(default_factory=list)
    columns: list[TaskColumn] = dataclasses.field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def learned(self) -> Optional[list[int]]:
        """Per task, the round that first taught it (0 = none: a suite); None = the default (task i in round i + 1)."""
        return [c.learned for c in self.columns] if self.columns else None

    def accuracy_matrix(self) -> np.ndarray:
        """The accuracy matrix as a float array, shape (evaluated rounds + 1, T), NaN = not evaluated."""
        m = np.full((len(self.accuracy), len(self.tasks)), np.nan)
        for t, row in enumerate(self.accuracy):
            for i, v in enumerate(row):
                if v is not None:
                    m[t, i] = v
        return m

    def set_accuracy_row(self, round_: int, row) -> None:
        """Store the accuracies after round ``round_`` (0 = before training); NaN/None = not evaluated.

        Rows may be written again (a resumed round); a gap is filled with
        unevaluated rows.
        """
        if len(row) != len(self.tasks):
            raise ValueError(f"row has {len(row)} values for {len(self.tasks)} tasks")
        clean = [None if v is None or not math.isfinite(float(v)) else float(v) for v in row]
        while len(self.accuracy) <= round_:
            self.accuracy.append([None] * len(self.tasks))
        self.accuracy[round_] = clean

    def set_round(self, record: RoundRecord) -> None:
        """Add the record of a round, replacing an earlier record of the same round."""
        self.rounds = [r for r in self.rounds if r.round != record.round] + [record]
        self.rounds.sort(key=lambda r: r.round)

    def validate(self) -> None:
        """Raise ``ValueError`` if rows and tasks do not fit together."""
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"run {self.run!r}: task names are not unique: {self.tasks}")
        for t, row in enumerate(self.accuracy):
            if len(row) != len(self.tasks):
                raise ValueError(f"run {self.run!r}: accuracy row {t} has {len(row)} values for {len(self.tasks)} tasks")
        if self.columns and [c.task for c in self.columns] != self.tasks:
            raise ValueError(f"run {self.run!r}: columns {[c.task for c in self.columns]} do not match tasks {self.tasks}")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _json_safe(x):
    """Non-finite floats -> None (strict JSON has no NaN)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    return x


def matrix_to_csv(tasks: list[str], accuracy: list[list[Optional[float]]]) -> str:
    """CSV text of the accuracy matrix: header ``round,<tasks>``, one line per row, empty = not evaluated."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["round", *tasks])
    for t, row in enumerate(accuracy):
        w.writerow([t, *("" if v is None else repr(float(v)) for v in row)])
    return buf.getvalue()


def read_accuracy_csv(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read ``accuracy_matrix.csv``: (task names, matrix of shape (rows, T) with NaN for empty cells)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or not rows[0] or rows[0][0] != "round":
        raise ValueError(f"{path}: first line must be the header round,<task names>")
    tasks = rows[0][1:]
    body = [r for r in rows[1:] if r]
    m = np.full((len(body), len(tasks)), np.nan)
    for k, r in enumerate(body):
        if int(r[0]) != k:
            raise ValueError(f"{path}: line {k + 2} is round {r[0]}, expected round {k}")
        for i, v in enumerate(r[1 : len(tasks) + 1]):
            if v.strip():
                m[k, i] = float(v)
    return tasks, m


def save_history(history: RunHistory, run_dir: str | Path) -> Path:
    """Write ``metrics/history.json`` and ``metrics/accuracy_matrix.csv`` under ``run_dir``; returns the JSON path."""
    history.validate()
    run_dir = Path(run_dir)
    data = _json_safe(to_dict(history))
    _atomic_write(run_dir / MATRIX_FILE, matrix_to_csv(history.tasks, history.accuracy))
    _atomic_write(run_dir / HISTORY_FILE, json.dumps(data, indent=1, allow_nan=False) + "\n")
    return run_dir / HISTORY_FILE


def history_from_dict(data: dict) -> RunHistory:
    """Strictly parse a history dict (unknown keys and bad types are errors)."""
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ValueError(f"history schema_version {version} is not supported (this code reads {SCHEMA_VERSION})")
    # JSON null entropies come back as None; the dataclass stores NaN.
    data = json.loads(json.dumps(data))
    for r in data.get("rounds", []):
        for c in r.get("clusters", []):
            if c.get("entropy", 0.0) is None:
                c["entropy"] = float("nan")
    try:
        h = from_dict(RunHistory, data)
    except ConfigError as e:
        raise ValueError(f"history record does not fit the schema: {e}") from None
    h.validate()
    return h


def load_history(run_dir: str | Path) -> RunHistory:
    """Read ``<run_dir>/metrics/history.json`` (a run in progress is fine).

    Without a history file but with an ``accuracy_matrix.csv``, a history with
    only the matrix is returned (run name = folder name, strategy unknown).
    """
    run_dir = Path(run_dir)
    path = run_dir / HISTORY_FILE
    if path.exists():
        return history_from_dict(json.loads(path.read_text(encoding="utf-8")))
    csv_path = run_dir / MATRIX_FILE
    if csv_path.exists():
        tasks, m = read_accuracy_csv(csv_path)
        h = RunHistory(run=run_dir.name, strategy="unknown", tasks=tasks)
        for t, row in enumerate(m):
            h.set_accuracy_row(t, row)
        return h
    raise FileNotFoundError(f"{run_dir} has neither {HISTORY_FILE} nor {MATRIX_FILE}")


def save_metrics(history: RunHistory, run_dir: str | Path, reference=None) -> Path:
    """Write ``metrics/metrics.json``: every registered CL metric, final and per round (null = undefined).

    ``reference``: the reference (multitask) run's final accuracies, shape (T,), for relative gain.
    """
    from lifelong.evaluation.metrics import summary

    data = {"run": history.run, "strategy": history.strategy, "tasks": history.tasks,
            **summary(history.accuracy_matrix(), reference, history.learned())}
    path = Path(run_dir) / METRICS_FILE
    _atomic_write(path, json.dumps(data, indent=1, allow_nan=False) + "\n")
    return path
