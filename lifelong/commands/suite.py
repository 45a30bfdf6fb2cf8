"""``lifelong suite add --run RUN PATH [--name N] [--metric M]``: add an evaluation suite to a run.

It appends the suite to the run's ``config.yaml``, ingests it, and measures it on every row evaluated
so far, the base row included, from the saved adapters (whatever ``eval.backfill`` says: the user
asked for the whole column); see :mod:`lifelong.evaluation.suites` for what a suite is.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from lifelong.evaluation.suites import (SuiteConfig, added_root, ingest_suite, pending_suites, sources,
                                        stream_datasets, suite_files, suite_problems)
from lifelong.layout import RunLayout, write_json


def setup(p) -> None:
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


def run(args) -> int:
    """``lifelong suite add``: see the module docstring."""
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


def measure(layout: RunLayout, pool, cfg, suite: SuiteConfig, t: int, progress: bool = True) -> dict:
    """Measure ``suite``'s tasks on every row 0..t that lacks a valid cell for them; write the cells and
    predictions under ``rounds/<t>/suites/<name>/``, then the history, metrics and dashboard."""
    from lifelong.evaluation.columns import held_out, labels_of
    from lifelong.evaluation.evaluate import evaluate_tasks, write_predictions
    from lifelong.evaluation.history import load_history
    from lifelong.evaluation.reporting import accuracy_cells, run_columns, write_history
    from lifelong.models.replay import load_round_model

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
