"""The accuracy matrix's columns: tasks named by the held-out records' ``task`` labels.

One vocabulary: a *dataset* arrives and is trained on (one round each); a
*task* is what is evaluated, one column of the matrix. Every held-out record
counts toward its ``task`` label (default: its dataset's name). A dataset
whose held-out records carry k labels adds k columns when it arrives; a label
carried by several datasets (or a dataset and an evaluation suite) is one
column, whose questions are all of theirs. Columns are numbered by first
arrival: the order in which their first question entered the pool.

A task's answer metric is ``eval.task_metrics[task]`` when set, else the
metric of the dataset (or suite) that brought it first.

Re-evaluation rule: every cell of a column is measured on the same
questions. When new held-out questions of an existing task arrive (a later
dataset carries its label), the column's question set grows, and the cells
measured before are stale: the arriving round's eval stage measures them
again from the saved adapters (``eval.backfill``: ``all`` every earlier row,
``fwt`` rows 0 and t-1 only; the other stale cells are then left empty,
never mixed). A cell's *stamp* is the round whose stage measured it; it is
valid when the stamp is at least the task's *version*, the latest round in
which one of its held-out questions arrived (:func:`versions`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from lifelong.evaluation.history import TaskColumn


@dataclass(frozen=True)
class Source:
    """What brings held-out questions: a dataset of the stream (``round``: its round) or a suite (``round`` None)."""

    name: str
    kind: str
    round: Optional[int]
    metric: str


@dataclass(frozen=True)
class HeldOut:
    """The held-out questions one source (pool ``dataset``) holds for one task.

    ``since``: the round in which the latest of them arrived (0 = setup).
    """

    task: str
    source: str
    questions: int
    since: int


def held_out(pool, split: str) -> list[HeldOut]:
    """Every (task, source) group of the pool's held-out ``split``, in first-arrival order."""
    rows = pool.db.execute(
        "SELECT task, dataset, COUNT(*), MAX(round_added), MIN(rowid) m FROM samples WHERE split = ? "
        "GROUP BY task, dataset ORDER BY m", (split,))
    return [HeldOut(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


def task_names(groups: list[HeldOut]) -> list[str]:
    """The tasks of ``groups``, each once, in first-arrival order: the matrix's columns."""
    return list(dict.fromkeys(g.task for g in groups))


def labels_of(groups: list[HeldOut], source: str) -> list[str]:
    """The task labels ``source``'s held-out records carry, in first-arrival order."""
    return [g.task for g in groups if g.source == source]


def versions(groups: list[HeldOut]) -> dict[str, int]:
    """task -> the latest round in which one of its held-out questions arrived (see the module docstring)."""
    out: dict[str, int] = {}
    for g in groups:
        out[g.task] = max(out.get(g.task, 0), g.since)
    return out


def task_columns(groups: list[HeldOut], sources: list[Source], taught: dict[int, list[str]],
                 task_metrics: dict[str, str], default_metric: str) -> list[TaskColumn]:
    """One :class:`TaskColumn` per task of ``groups``, in first-arrival order.

    ``sources``: the stream's datasets and the run's suites; ``taught``:
    round -> the task labels of that round's training records (as far as
    ingested). A column's ``rounds`` are the rounds of the datasets whose
    held-out records carry it (a round not trained yet included: the stream
    names it) and the rounds whose training records carry it.
    """
    by_name = {s.name: s for s in sources}
    out = []
    for task in task_names(groups):
        srcs = [g.source for g in groups if g.task == task]
        first = by_name.get(srcs[0])
        rounds = {by_name[s].round for s in srcs if s in by_name and by_name[s].round is not None}
        rounds |= {r for r, labels in taught.items() if task in labels}
        metric = task_metrics.get(task) or (first.metric if first is not None else default_metric)
        out.append(TaskColumn(task=task, source=srcs[0], kind=first.kind if first is not None else "dataset",
                              sources=srcs, rounds=sorted(rounds), metric=metric))
    return out


def check_held_out(source: str, kind: str, path: str, groups: list[HeldOut], task_metrics: dict[str, str],
                   quarantined: int = 0) -> None:
    """Raise ``ValueError`` when ``source`` (a dataset or suite, ``kind``) gave a held-out split at ``path``
    but no question of it is in the pool, or when ``eval.task_metrics`` names ``source`` as a task that
    none of its records carries (a column that would stay empty). The message names the labels found."""
    labels = labels_of(groups, source)
    if not labels:
        raise ValueError(f"{kind} {source!r}: its held-out split ({path}) gave no valid question, so it would "
                         f"add no task to evaluate ({quarantined} record(s) quarantined; task labels found: none)")
    if source in task_metrics and source not in task_names(groups):
        raise ValueError(f"eval.task_metrics names task {source!r}, but {kind} {source!r}'s held-out records carry "
                         f"the task labels {', '.join(labels)}: the column {source!r} would have no question. "
                         f"Name those tasks in eval.task_metrics (or set the {kind}'s metric)")
