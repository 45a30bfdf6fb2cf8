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

import json
import math

from lifelong.evaluation.history import ClusterRecord, RoundRecord, RunHistory, save_history, save_metrics
from lifelong.evaluation.metrics import per_round
from lifelong.export.cards import write_round_card
from lifelong.export.lineage import compress_json


def accuracy_cells(run, t: int, entries) -> list[dict[str, float]]:
    """Rows 0..t of the accuracy matrix as ``{task: accuracy}`` dicts, from the stage markers.

    A row is what the round's own evaluation measured (over the tasks known
    then) plus the cells later rounds back-filled for datasets that arrived
    afterwards. Markers written before rows named their tasks hold a list in
    the order of ``entries``. NaN cells (not evaluated) are left out.
    """
    names = [e.name for e in entries]
    rows: list[dict[str, float]] = []
    for r in range(t + 1):
        info = run.stage_info(r, "setup" if r == 0 else "eval")
        row = info.get("row", [])
        rows.append({k: float(v) for k, v in zip(info.get("tasks", names), row)
                     if v is not None and math.isfinite(float(v))})
    for r in range(1, t + 1):
        for earlier, cells in run.stage_info(r, "eval").get("backfill", {}).items():
            rows[int(earlier)].update({k: float(v) for k, v in cells.items() if math.isfinite(float(v))})
    return rows


def round_record(run, r: int, entries) -> RoundRecord:
    """Round ``r``'s record from its stage files (reads that round's selection once)."""
    rdir = run.dir / "rounds" / str(r)
    sel_path = rdir / "select" / "selection.json"
    sel = json.loads(sel_path.read_text()) if sel_path.exists() else {}
    losses_path = rdir / "train" / "losses.json"
    return RoundRecord(
        round=r,
        dataset=entries[r - 1].name,
        pool_size=run.stage_info(r, "prune").get("pool_size", 0),
        selected=len(sel.get("ids", [])),
        pruned=run.stage_info(r, "prune").get("pruned", 0),
        # [step, loss] as floats, as the saved history reads them back
        train_loss=[[float(v) for v in p] for p in json.loads(losses_path.read_text())] if losses_path.exists() else [],
        stage_seconds={s: run.stage_info(r, s).get("seconds", 0.0) for s in
                       ("ingest", "score", "select", "train", "prune", "eval")},
        clusters=[ClusterRecord(id=c["id"], size=c["size"], expert=c["expert"],
                                entropy=c["entropy"].get(c["expert"], float("nan")), selected=c["share"])
                  for c in sel.get("clusters", [])],
    )


def build_history(run, t: int, entries, previous: RunHistory | None = None) -> RunHistory:
    """History of rounds 0..t of ``run`` (a ``lifelong.loop.Run``) from its stage files.

    ``previous``: the history saved by an earlier report of this run; its
    records of rounds before ``t`` are taken as they are (a round's record
    never changes once its report ran), so a report reads one round's
    selection, not every round's. The accuracy matrix is always rebuilt from
    the stage markers (later rounds back-fill earlier rows). Records missing
    from ``previous`` are built from the files.
    """
    names = [e.name for e in entries]
    h = RunHistory(run=run.cfg.name, strategy=run.cfg.select.strategy, tasks=names)
    for r, cells in enumerate(accuracy_cells(run, t, entries)):
        h.set_accuracy_row(r, [cells.get(n, float("nan")) for n in names])
    kept = {}
    if previous is not None and previous.run == h.run and previous.strategy == h.strategy:
        kept = {rec.round: rec for rec in previous.rounds
                if rec.round < t and rec.round <= len(entries) and rec.dataset == entries[rec.round - 1].name}
    for r in range(1, t + 1):
        h.set_round(kept[r] if r in kept else round_record(run, r, entries))
    return h


def _saved_history(run) -> RunHistory | None:
    from lifelong.evaluation.history import load_history

    try:
        return load_history(run.dir)
    except (FileNotFoundError, ValueError):
        return None


def report_round(run, t: int, entries) -> None:
    from lifelong.evaluation.dashboard import write_dashboard
    from lifelong.selection.outputs import slim_scores_table  # (lazy: selection pulls in torch, faiss)

    h = build_history(run, t, entries, _saved_history(run))
    save_history(h, run.dir)
    save_metrics(h, run.dir)
    write_dashboard([run.dir], run.dir / "dashboard.html")
    a = h.accuracy_matrix()
    values = {name: per_round(name, a)[t] for name in ("avg_acc", "forgetting", "bwt", "fwt")}
    rec = h.rounds[-1]
    values.update({"pool/size": rec.pool_size, "pool/selected": rec.selected, "pool/pruned": rec.pruned})
    values.update({f"time/{k}": v for k, v in rec.stage_seconds.items()})
    values.update({f"acc/{task}": a[t, i] for i, task in enumerate(h.tasks)})
    run.tracker.log({k: float(v) for k, v in values.items()}, step=t)
    write_round_card(run.dir, t)
    # The data cards of rounds < t are written (their reports are done), and they were the last
    # readers of those rounds' pruned rows: the rows leave the manifest, the ledger keeps them.
    # (Round t's stay until the next report, so a resumed report t renders the same card.)
    if run.pool.purge(before_round=t):
        run.pool.compact()
    for r in range(1, t):  # earlier rounds' per-sample files: score tables cut, prune records compressed
        slim_scores_table(run.dir / "rounds" / str(r) / "select" / "scores.parquet")
        compress_json(run.dir / "rounds" / str(r) / "prune" / "pruned.json")
