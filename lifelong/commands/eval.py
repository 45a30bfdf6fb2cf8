"""``lifelong eval --run DIR [--round N]``: re-evaluate a saved adapter of a run on every task (column).

The evaluation itself is :func:`lifelong.evaluation.evaluate.evaluate_tasks`;
the round's model comes from :func:`lifelong.models.replay.load_round_model` (merges
replayed under ``adapter_policy: merge``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from lifelong.evaluation.evaluate import evaluate_tasks, write_predictions
from lifelong.layout import RunLayout


def setup(p) -> None:
    p.add_argument("--run", required=True, type=Path, help="run directory")
    p.add_argument("--round", type=int, default=None,
                   help="round whose adapter to evaluate (default: the latest saved; 0 = the base model)")
    p.add_argument("--out", nargs="?", const="", default=None,
                   help="write per-sample predictions as JSONL (default path: <run>/reeval/round_<t>.jsonl; "
                        "the loop's own predictions are never overwritten)")
    p.add_argument("--max-samples", type=int, default=None, help="override eval.max_samples_per_task")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_task_metrics(run_dir: str | Path, run_cfg, history=None) -> dict[str, str]:
    """Answer metric per task of a run, as its rounds used them.

    The history's columns record each task's metric. A history written
    before it recorded them: the built-in stream's manifest
    (``<run>/data/stream.json``) and the user's datasets
    (``run_cfg.stream.datasets``) name each dataset's metric, a task being
    named after its dataset; ``run_cfg.eval.task_metrics`` overrides both.
    """
    if history is not None and history.columns:
        return {c.task: c.metric for c in history.columns}
    metrics: dict[str, str] = {}
    layout = RunLayout(run_dir)
    if layout.stream_manifest.exists():
        from lifelong.data.stream.files import read_manifest

        metrics.update({info.name: info.metric for info in read_manifest(layout.data)})
    metrics.update({e.name: e.metric for e in run_cfg.stream.datasets})
    metrics.update(run_cfg.eval.task_metrics)
    return metrics


def run(args) -> int:
    """``lifelong eval``: print the per-task table of round N's adapter; optionally write predictions.

    Round N's model is rebuilt by :func:`lifelong.models.replay.load_round_model` (merges replayed
    under ``adapter_policy: merge``).
    """
    from lifelong.runlock import run_lock

    if not RunLayout(args.run).config.exists():
        raise SystemExit(f"{args.run} is not a run directory (no config.yaml)")
    with run_lock(args.run):  # it writes predictions into the run
        return _reevaluate(args)


def _reevaluate(args) -> int:
    from lifelong.data.pool import Pool
    from lifelong.evaluation.history import load_history
    from lifelong.run_config import load_run_config

    run_dir: Path = args.run
    layout = RunLayout(run_dir)
    run_cfg = load_run_config(run_dir)
    history = load_history(run_dir)
    eval_cfg = dataclasses.replace(run_cfg.eval, task_metrics=run_task_metrics(run_dir, run_cfg, history))
    if args.max_samples is not None:
        eval_cfg = dataclasses.replace(eval_cfg, max_samples_per_task=args.max_samples)
    tasks = history.tasks
    rounds = layout.adapter_rounds()
    round_ = args.round if args.round is not None else (rounds[-1] if rounds else 0)
    if round_ != 0 and round_ not in rounds:
        raise SystemExit(f"{run_dir}: no adapter for round {round_} (saved: {rounds or 'none'})")

    out = None if args.out is None else Path(args.out or layout.reeval_predictions(round_))
    if out is not None and layout.rounds.resolve() in out.resolve().parents:
        raise SystemExit(f"{out} is among the loop's own records ({layout.rounds}); choose another --out")

    from lifelong.models.replay import load_round_model

    loaded = load_round_model(run_cfg, run_dir, round_)
    with Pool(layout.pool) as pool:
        result = evaluate_tasks(loaded, pool, tasks, eval_cfg, progress=not args.no_progress)
    what = f"adapter round_{round_}" if round_ in rounds else "base model"
    if run_cfg.adapter_policy == "merge" and round_ > 1:
        what += f" on the base with rounds 1..{round_ - 1} merged"
    print(f"run {run_dir.name}, round {round_} ({what}), {result.seconds:.1f} s")
    print(result.table())
    if out is not None:
        out = write_predictions(result, out)
        print(f"predictions: {out}")
    return 0
