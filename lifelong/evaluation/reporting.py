"""The report stage: history, metrics, dashboard, data card and trackers after a round.

Then the upkeep that keeps the run directory bounded by the pool cap, not by
everything ingested: the rows of samples pruned in earlier rounds leave the
pool's manifest (their data cards are written), and earlier rounds' score
tables are cut to their selected rows and their prune records gzipped.

The run history comes from what the stages wrote: the accuracy matrix from the
stage markers every time, a round's record from its files once (later reports
take it from the saved history), so a resumed run reports exactly what an
uninterrupted one would, and a report costs one round's files, not all of them.
"""
from __future__ import annotations

import math

from lifelong.evaluation.data_card import write_round_card
from lifelong.evaluation.history import (ClusterRecord, RoundRecord, RunHistory, TaskColumn, save_history,
                                        save_metrics)
from lifelong.layout import RunLayout, compress_json, read_json


def accuracy_cells(layout: RunLayout, t: int, tasks: list[str] | None = None,
                   versions: dict[str, int] | None = None) -> list[dict[str, float]]:
    """Rows 0..t of the accuracy matrix as ``{task: accuracy}`` dicts, from the stage markers.

    A row is what the round's own evaluation measured (over the tasks known
    then) plus the cells later rounds (and ``lifelong suite add``) back-filled
    or measured again. Where a cell was measured more than once, the latest
    measurement counts; a cell measured before its task's question set last
    grew (its stamp is below ``versions[task]``, see
    :mod:`lifelong.evaluation.columns`) is stale and left out. Markers
    written before rows named their tasks hold a list in the order of
    ``tasks``. NaN cells (not evaluated) are left out.
    """
    versions = versions or {}
    stamped: list[dict[str, tuple[int, float]]] = [{} for _ in range(t + 1)]

    def put(r: int, cells, stamp: int) -> None:
        for k, v in cells:
            if r <= t and v is not None and math.isfinite(float(v)) and stamp >= versions.get(k, 0):
                stamped[r][k] = (stamp, float(v))

    for s in range(t + 1):
        info = layout.stage_info(s, "setup" if s == 0 else "eval")
        put(s, zip(info.get("tasks", tasks or []), info.get("row", [])), s)
        for earlier, cells in info.get("backfill", {}).items():
            put(int(earlier), cells.items(), s)
        for added in suite_markers(layout, s):
            for earlier, cells in added.get("backfill", {}).items():
                put(int(earlier), cells.items(), s)
    return [{k: v for k, (_, v) in row.items()} for row in stamped]


def suite_markers(layout: RunLayout, s: int) -> list[dict]:
    """What ``lifelong suite add`` measured after round ``s`` (:mod:`lifelong.evaluation.suites`), by suite name."""
    from lifelong.evaluation.suites import added_root

    root = added_root(layout, s)
    return [read_json(p) or {} for p in sorted(root.glob("*/done"))] if root.is_dir() else []


def taught_tasks(layout: RunLayout, t: int) -> dict[int, list[str]]:
    """Round -> the task labels of its dataset's training records, rounds 1..t, from the ingest markers
    (a marker written before they were recorded: the dataset's name)."""
    out = {}
    for r in range(1, t + 1):
        info = layout.stage_info(r, "ingest")
        if info:
            out[r] = list(info.get("tasks", [info.get("dataset")]))
    return out


def run_columns(layout: RunLayout, pool, t: int, sources, eval_cfg) -> tuple[list[TaskColumn], dict[str, int]]:
    """(the matrix's columns after round ``t``, task -> version) of a run: its held-out questions in the pool,
    ``sources`` (:class:`lifelong.evaluation.columns.Source`, the stream's datasets and the suites) and the
    ingest markers of rounds 1..t."""
    from lifelong.evaluation.columns import held_out, task_columns, versions

    groups = held_out(pool, eval_cfg.split)
    cols = task_columns(groups, sources, taught_tasks(layout, t), eval_cfg.task_metrics, eval_cfg.default_metric)
    return cols, versions(groups)


def round_record(layout: RunLayout, r: int, dataset: str) -> RoundRecord:
    """Round ``r``'s record from its stage files (reads that round's selection once)."""
    sel = read_json(layout.selection(r)) or {}
    losses = read_json(layout.losses(r)) or []
    prune = layout.stage_info(r, "prune")
    return RoundRecord(
        round=r,
        dataset=dataset,
        pool_size=prune.get("pool_size", 0),
        selected=len(sel.get("ids", [])),
        pruned=prune.get("pruned", 0),
        train_loss=[[float(v) for v in p] for p in losses],  # [step, loss] as floats, as the saved history reads them
        stage_seconds={s: layout.stage_info(r, s).get("seconds", 0.0) for s in
                       ("ingest", "score", "select", "train", "prune", "eval")},
        clusters=[ClusterRecord(id=c["id"], size=c["size"], expert=c["expert"],
                                entropy=c["entropy"].get(c["expert"], float("nan")), selected=c["share"])
                  for c in sel.get("clusters", [])],
    )


def build_history(layout: RunLayout, t: int, datasets: list[str], name: str, strategy: str,
                  previous: RunHistory | None = None, columns: list[TaskColumn] | None = None,
                  versions: dict[str, int] | None = None) -> RunHistory:
    """History of rounds 0..t of the run in ``layout`` (run ``name``, ``strategy``) from its stage files.

    ``datasets``: the stream's dataset names in arrival order (round r
    trained ``datasets[r - 1]``). ``columns``: the matrix's tasks
    (:func:`run_columns`; default: one per dataset, named after it, as runs
    recorded them before tasks were told apart from datasets), ``versions``
    the tasks' versions (stale cells are left out, see :func:`accuracy_cells`).
    ``previous``: the history saved by an earlier report of this run; its
    records of rounds before ``t`` are taken as they are (a round's record
    never changes once its report ran), so a report reads one round's
    selection, not every round's. The accuracy matrix is always rebuilt from
    the stage markers (later rounds back-fill earlier rows). Records missing
    from ``previous`` are built from the files.
    """
    tasks = [c.task for c in columns] if columns is not None else list(datasets)
    h = RunHistory(run=name, strategy=strategy, tasks=tasks, columns=list(columns or []))
    for r, cells in enumerate(accuracy_cells(layout, t, tasks, versions)):
        h.set_accuracy_row(r, [cells.get(n, float("nan")) for n in tasks])
    kept = {}
    if previous is not None and previous.run == h.run and previous.strategy == h.strategy:
        kept = {rec.round: rec for rec in previous.rounds
                if rec.round < t and rec.round <= len(datasets) and rec.dataset == datasets[rec.round - 1]}
    for r in range(1, t + 1):
        h.set_round(kept[r] if r in kept else round_record(layout, r, datasets[r - 1]))
    return h


def _saved_history(layout: RunLayout) -> RunHistory | None:
    from lifelong.evaluation.history import load_history

    try:
        return load_history(layout.root)
    except (FileNotFoundError, ValueError):
        return None


def write_history(layout: RunLayout, pool, t: int, datasets: list[str], name: str, strategy: str, sources,
                  eval_cfg) -> RunHistory:
    """Rebuild the history of rounds 0..t and write it with the metrics and the dashboard; returns it.

    ``sources``, ``eval_cfg``: as :func:`run_columns` takes them.
    """
    from lifelong.evaluation.dashboard import write_dashboard

    columns, versions = run_columns(layout, pool, t, sources, eval_cfg)
    h = build_history(layout, t, datasets, name, strategy, _saved_history(layout), columns, versions)
    save_history(h, layout.root)
    save_metrics(h, layout.root)
    write_dashboard([layout.root], layout.dashboard)
    return h


def report_round(layout: RunLayout, pool, t: int, datasets: list[str], name: str, strategy: str, tracker,
                 sources, eval_cfg) -> RunHistory:
    """After round ``t``: history and metrics files, the dashboard, round t's data card, tracker scalars.

    ``pool``: the run's :class:`lifelong.data.pool.Pool` (earlier rounds' pruned rows leave it);
    ``datasets``: the stream's dataset names in arrival order; ``tracker``: a
    :class:`lifelong.evaluation.trackers.Tracker` (its ``log_round`` tags);
    ``sources``, ``eval_cfg``: what the columns come from (:func:`run_columns`).
    Returns the history written.
    """
    from lifelong.selection.outputs import slim_scores_table  # (lazy: selection pulls in torch, faiss)

    h = write_history(layout, pool, t, datasets, name, strategy, sources, eval_cfg)
    tracker.log_round(h, t)
    write_round_card(layout.root, t)
    # The data cards of rounds < t are written (their reports are done), and they were the last
    # readers of those rounds' pruned rows: the rows leave the manifest, the ledger keeps them.
    # (Round t's stay until the next report, so a resumed report t renders the same card.)
    if pool.purge(before_round=t):
        pool.compact()
    for r in range(1, t):  # earlier rounds' per-sample files: score tables cut, prune records compressed
        slim_scores_table(layout.scores_table(r))
        compress_json(layout.pruned(r))
    return h
