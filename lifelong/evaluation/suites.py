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
* ``lifelong suite add --run RUN PATH [--name N] [--metric M]``: appends the
  suite to the run's ``config.yaml``, ingests it, and measures it on every row
  evaluated so far, the base row included, from the saved adapters (whatever
  ``eval.backfill`` says: the user asked for the whole column). The cells go
  to ``rounds/<t>/suites/<name>/`` (``t`` = the last evaluated round: a
  ``done`` marker with the cells, ``round_<r>.jsonl`` predictions), which the
  report reads like a stage's back-fill; the next round evaluates the suite
  in its own row.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from lifelong.layout import RunLayout, write_json

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


# ---- lifelong suite add ------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lifelong suite", description="Evaluation suites of a run.")
    sub = p.add_subparsers(dest="action", required=True)
    a = sub.add_parser("add", help="add a fixed test set to a run: evaluated after every round, earlier rows "
                                   "back-filled from the saved adapters")
    a.add_argument("path", type=Path, help="LLaVA JSON or messages JSONL/Parquet file, a folder of them, "
                                           "or a save_to_disk dataset")
    a.add_argument("--run", required=True, type=Path, help="run directory")
    a.add_argument("--name", help="suite name (default: the file stem or folder name)")
    a.add_argument("--metric", default=None, help="answer metric of its tasks (default: eval.default_metric)")
    a.add_argument("--format", choices=["llava", "messages", "hf"], default=None, help="force a format")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    """``lifelong suite add``: see the module docstring."""
    args = build_parser().parse_args(argv)
    from lifelong.runlock import run_lock

    if not RunLayout(args.run).config.exists():
        raise SystemExit(f"{args.run} is not a run directory (no config.yaml)")
    with run_lock(args.run):
        return add(args.run, args.path, args.name, args.metric, args.format, progress=not args.no_progress)


def last_evaluated(layout: RunLayout) -> Optional[int]:
    """The last round whose row is measured (0 = setup), or None before setup finished."""
    if not layout.marker(0, "setup").exists():
        return None
    t = 0
    while layout.marker(t + 1, "eval").exists():
        t += 1
    return t


def add(run_dir: Path, path: Path, name: Optional[str] = None, metric: Optional[str] = None,
        fmt: Optional[str] = None, progress: bool = True) -> int:
    """Add the suite at ``path`` to the run in ``run_dir`` (its lock held) and measure its column; exit code."""
    from lifelong.data.pool import Pool
    from lifelong.run_config import load_run_config, save_run_config

    layout = RunLayout(run_dir)
    cfg = load_run_config(run_dir)
    path = Path(path).absolute()
    suite = SuiteConfig(name or (path.stem if path.is_file() else path.name), str(path), metric, fmt)
    known = {s.name: s for s in cfg.eval.suites}
    if suite.name in known and known[suite.name].path != suite.path:
        raise SystemExit(f"error: run {run_dir} already has a suite {suite.name!r} ({known[suite.name].path})")
    with Pool(layout.pool) as pool:
        datasets = [n for n, _ in stream_datasets(layout, cfg)]
        datasets += [d for d in pool.datasets() if d not in known and d not in datasets]
        problems = suite_problems([*[s for s in cfg.eval.suites if s.name != suite.name], suite], datasets)
        if problems:
            raise SystemExit("error: " + "; ".join(problems))
        if suite.name not in known:
            check_records(suite, cfg)  # nothing written for a suite without a valid question
            cfg.eval.suites.append(suite)
            save_run_config(cfg)
        t = last_evaluated(layout)
        if t is None:
            print(f"suite {suite.name!r} added to {run_dir}; the run's setup will evaluate it")
            return 0
        if pending_suites(pool, [suite], cfg.eval.split):
            ingest_suite(pool, suite, cfg.eval, t, cfg.ingest)
        measure(layout, pool, cfg, suite, t, progress)
        print(f"suite {suite.name!r}: rows 0..{t} of {layout.history}")
    return 0


def check_records(suite: SuiteConfig, cfg) -> None:
    """Raise ``SystemExit`` unless ``suite``'s files hold a valid record (a dry run of ingestion)."""
    from lifelong.data.ingest import check_records as dry_run

    valid, bad = 0, []
    try:
        for f in suite_files(suite.path, cfg.eval.split):
            rep = dry_run(f, dataset=suite.name, split=cfg.eval.split, fmt=suite.format, cfg=cfg.ingest)
            valid += rep.added
            bad += rep.quarantined
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: suite {suite.name!r}: {e}") from None
    if valid == 0:
        first = f"; first problem: record {bad[0]['index']}: {bad[0]['reason']}" if bad else ""
        raise SystemExit(f"error: suite {suite.name!r}: {suite.path} gave no valid question ({len(bad)} bad{first}), "
                         "so it would add no task to evaluate; task labels found: none")


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


def measure(layout: RunLayout, pool, cfg, suite: SuiteConfig, t: int, progress: bool = True) -> dict:
    """Measure ``suite``'s tasks on every row 0..t that lacks a valid cell for them; write the cells and
    predictions under ``rounds/<t>/suites/<name>/``, then the history, metrics and dashboard."""
    from lifelong.evaluation.columns import held_out, labels_of
    from lifelong.evaluation.command import load_round_model
    from lifelong.evaluation.evaluate import evaluate_tasks, write_predictions
    from lifelong.evaluation.history import load_history
    from lifelong.evaluation.reporting import accuracy_cells, run_columns, write_history

    datasets = stream_datasets(layout, cfg)
    srcs = sources(datasets, cfg.eval)
    columns, versions = run_columns(layout, pool, t, srcs, cfg.eval)
    eval_cfg = dataclasses.replace(cfg.eval, task_metrics={c.task: c.metric for c in columns})
    tasks = labels_of(held_out(pool, cfg.eval.split), suite.name)
    cells = accuracy_cells(layout, t, None, versions)
    d = added_root(layout, t) / suite.name
    backfill = {}
    for r in range(t + 1):
        if r > 0 and layout.stage_info(r, "eval").get("skipped"):
            continue
        todo = [k for k in tasks if k not in cells[r]]
        if not todo:
            continue
        res = evaluate_tasks(load_round_model(cfg, layout.root, r), pool, todo, eval_cfg, progress=progress)
        write_predictions(res, d / f"round_{r}.jsonl")
        backfill[str(r)] = {k: float(res.accuracy[k]) for k in todo}
    if backfill:
        old = (layout.stage_info(t, f"suites/{suite.name}") or {}).get("backfill", {})
        write_json(d / "done", {"suite": suite.name, "backfill": {**old, **backfill}})
    try:
        strategy = load_history(layout.root).strategy
    except (FileNotFoundError, ValueError):
        strategy = cfg.select.strategy
    write_history(layout, pool, t, [n for n, _ in datasets], cfg.name, strategy, srcs, cfg.eval)
    return backfill
