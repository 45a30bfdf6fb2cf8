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

from lifelong.evaluation.history import ClusterRecord, RoundRecord, RunHistory, save_history, save_metrics
from lifelong.export.cards import write_round_card
from lifelong.layout import RunLayout, compress_json, read_json


def accuracy_cells(layout: RunLayout, t: int, tasks: list[str]) -> list[dict[str, float]]:
    """Rows 0..t of the accuracy matrix as ``{task: accuracy}`` dicts, from the stage markers.

    A row is what the round's own evaluation measured (over the tasks known
    then) plus the cells later rounds back-filled for datasets that arrived
    afterwards. Markers written before rows named their tasks hold a list in
    the order of ``tasks`` (the stream's dataset names). NaN cells (not
    evaluated) are left out.
    """
    rows: list[dict[str, float]] = []
    for r in range(t + 1):
        info = layout.stage_info(r, "setup" if r == 0 else "eval")
        row = info.get("row", [])
        rows.append({k: float(v) for k, v in zip(info.get("tasks", tasks), row)
                     if v is not None and math.isfinite(float(v))})
    for r in range(1, t + 1):
        for earlier, cells in layout.stage_info(r, "eval").get("backfill", {}).items():
            rows[int(earlier)].update({k: float(v) for k, v in cells.items() if math.isfinite(float(v))})
    return rows


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


def build_history(layout: RunLayout, t: int, tasks: list[str], name: str, strategy: str,
                  previous: RunHistory | None = None) -> RunHistory:
    """History of rounds 0..t of the run in ``layout`` (run ``name``, ``strategy``) from its stage files.

    ``tasks``: the stream's dataset names in arrival order (round r trained
    ``tasks[r - 1]``). ``previous``: the history saved by an earlier report of
    this run; its records of rounds before ``t`` are taken as they are (a
    round's record never changes once its report ran), so a report reads one
    round's selection, not every round's. The accuracy matrix is always
    rebuilt from the stage markers (later rounds back-fill earlier rows).
    Records missing from ``previous`` are built from the files.
    """
    h = RunHistory(run=name, strategy=strategy, tasks=list(tasks))
    for r, cells in enumerate(accuracy_cells(layout, t, tasks)):
        h.set_accuracy_row(r, [cells.get(n, float("nan")) for n in tasks])
    kept = {}
    if previous is not None and previous.run == h.run and previous.strategy == h.strategy:
        kept = {rec.round: rec for rec in previous.rounds
                if rec.round < t and rec.round <= len(tasks) and rec.dataset == tasks[rec.round - 1]}
    for r in range(1, t + 1):
        h.set_round(kept[r] if r in kept else round_record(layout, r, tasks[r - 1]))
    return h


def _saved_history(layout: RunLayout) -> RunHistory | None:
    from lifelong.evaluation.history import load_history

    try:
        return load_history(layout.root)
    except (FileNotFoundError, ValueError):
        return None


def report_round(layout: RunLayout, pool, t: int, tasks: list[str], name: str, strategy: str, tracker) -> RunHistory:
    """After round ``t``: history and metrics files, the dashboard, round t's data card, tracker scalars.

    ``pool``: the run's :class:`lifelong.data.pool.Pool` (earlier rounds' pruned rows leave it);
    ``tasks``: the stream's dataset names in arrival order; ``tracker``: a
    :class:`lifelong.evaluation.trackers.Tracker` (its ``log_round`` tags).
    Returns the history written.
    """
    from lifelong.evaluation.dashboard import write_dashboard
    from lifelong.selection.outputs import slim_scores_table  # (lazy: selection pulls in torch, faiss)

    h = build_history(layout, t, tasks, name, strategy, _saved_history(layout))
    save_history(h, layout.root)
    save_metrics(h, layout.root)
    write_dashboard([layout.root], layout.dashboard)
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
