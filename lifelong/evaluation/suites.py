"""Evaluation suites: fixed test sets evaluated after every round, whatever datasets arrive.

A suite is a user's benchmark: a LLaVA JSON or messages JSONL/Parquet file, a
folder of them (its ``test.*`` files, else every such file in it), or a
``save_to_disk`` dataset (its ``test`` split). Its records enter the pool's
held-out split under the suite's name (which no dataset of the run may
have); each counts toward its ``task`` label, by default the suite's name, so
a suite adds one column per label. The metric is the suite's ``metric``
(default ``eval.default_metric``) unless ``eval.task_metrics`` sets one per
task. No round teaches a suite's task, so it has no BWT, FWT or
learning-accuracy term; it counts in average accuracy and forgetting
(:mod:`lifelong.evaluation.metrics`).

Two ways in:

* ``eval.suites`` in the run config: setup ingests them with the datasets'
  test splits and row 0 evaluates them; a suite added to the config of a
  started run is ingested by the next eval stage, which back-fills it.
* ``lifelong suite add --run RUN PATH [--name N] [--metric M]`` (:mod:`lifelong.commands.suite`): appends the
  suite to the run's ``config.yaml``, ingests it, and measures it on every row
  evaluated so far, the base row included, from the saved adapters (whatever
  ``eval.backfill`` says: the user asked for the whole column). The cells go
  to ``rounds/<t>/suites/<name>/`` (``t`` = the last evaluated round: a
  ``done`` marker with the cells, ``round_<r>.jsonl`` predictions), which the
  report reads like a stage's back-fill; the next round evaluates the suite
  in its own row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from lifelong.layout import RunLayout

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_EXTS = (".json", ".jsonl", ".parquet")


@dataclass
class SuiteConfig:
    """One evaluation suite.

    ``name``: the default task label of its records and their pool dataset
    name; ``path``: the file or folder (see the module docstring);
    ``metric``: answer metric of its tasks (None = ``eval.default_metric``);
    ``format``: ``llava``/``messages``/``hf`` (None = detect).
    """

    name: str
    path: str
    metric: Optional[str] = None
    format: Optional[str] = None


def suite_problems(suites: list[SuiteConfig], datasets: list[str] = ()) -> list[str]:
    """What is wrong with ``eval.suites`` (names, clashes with ``datasets``, metrics); files are not read."""
    from lifelong.evaluation.scoring import ANSWER_METRICS

    out, seen = [], set()
    for i, s in enumerate(suites):
        where = f"eval.suites[{i}] ({s.name})"
        if not NAME.fullmatch(s.name or ""):
            out.append(f"{where}.name: {s.name!r} is not a suite name (letters, digits, '.', '_' and '-', "
                       "starting with a letter or digit)")
        if s.name in seen:
            out.append(f"{where}.name: {s.name!r} appears twice (suite names must be unique)")
        if s.name in datasets:
            out.append(f"{where}.name: {s.name!r} is a dataset of the run (a suite needs a name of its own)")
        seen.add(s.name)
        if not s.path:
            out.append(f"{where}.path: empty (the suite's file or folder)")
        if s.metric is not None and s.metric not in ANSWER_METRICS:
            out.append(f"{where}.metric: unknown answer metric {s.metric!r} (known: {', '.join(sorted(ANSWER_METRICS))})")
    return out


def suite_files(path: str | Path, split: str) -> list[Path]:
    """The files to ingest of the suite at ``path`` (see the module docstring)."""
    from lifelong.data.ingest import detect_format_safe, iter_dataset_files

    path = Path(path)
    if not path.exists():
        raise ValueError(f"suite path {path} does not exist")
    if path.is_file() or detect_format_safe(path) == "hf":
        return [path]
    files = list(iter_dataset_files(path, split=split))
    return files or sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _EXTS)


def ingest_suite(pool, suite: SuiteConfig, eval_cfg, round_added: int, ingest_cfg=None) -> int:
    """Ingest ``suite`` into ``pool``'s held-out split as of round ``round_added``; returns the questions added.

    Raises ``ValueError`` (nothing evaluated) when it gives no valid question
    (:func:`lifelong.evaluation.columns.check_held_out`).
    """
    from lifelong.data.ingest import ingest
    from lifelong.evaluation.columns import check_held_out, held_out

    added, quarantined = 0, 0
    for f in suite_files(suite.path, eval_cfg.split):
        rep = ingest(pool, f, dataset=suite.name, split=eval_cfg.split, fmt=suite.format, round_added=round_added,
                     cfg=ingest_cfg)
        print(rep.summary())
        added += rep.added
        quarantined += len(rep.quarantined)
    check_held_out(suite.name, "suite", suite.path, held_out(pool, eval_cfg.split), eval_cfg.task_metrics,
                   quarantined)
    return added


def pending_suites(pool, suites: list[SuiteConfig], split: str) -> list[SuiteConfig]:
    """The suites of ``suites`` that have no question in the pool yet."""
    return [s for s in suites if pool.count(status=None, split=split, dataset=s.name) == 0]


def added_root(layout: RunLayout, t: int) -> Path:
    """Where ``lifelong suite add`` keeps what it measured after round ``t``: ``rounds/<t>/suites/``."""
    return layout.stage_dir(t, "suites")


def stream_datasets(layout: RunLayout, cfg) -> list[tuple[str, str]]:
    """(name, metric) of the run's datasets in arrival order: the built-in stream's (once prepared), then the user's."""
    out = []
    if cfg.stream.builtin != "none" and layout.stream_manifest.exists():
        from lifelong.data.stream import read_manifest

        out += [(i.name, i.metric) for i in read_manifest(layout.data)]
    return out + [(e.name, e.metric) for e in cfg.stream.datasets]


def sources(datasets: list[tuple[str, str]], eval_cfg) -> list:
    """The :class:`lifelong.evaluation.columns.Source` list of a run: its datasets (round = position + 1)
    and its suites."""
    from lifelong.evaluation.columns import Source

    return ([Source(n, "dataset", i + 1, m) for i, (n, m) in enumerate(datasets)]
            + [Source(s.name, "suite", None, s.metric or eval_cfg.default_metric) for s in eval_cfg.suites])
