"""What each stage of a round does: ``fn(run, t, d, entry, entries) -> info``.

``run`` is the :class:`lifelong.loop.Run` (its config, pool, models, layout,
process group); ``d`` the stage's folder ``rounds/<t>/<stage>/``; ``info`` goes
into the stage's ``done`` marker. A stage reads what earlier stages wrote,
never in-memory leftovers, so a resumed run redoes only unfinished stages.
Round 0 has one stage, :func:`setup`.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from lifelong.data.ingest import ingest as ingest_file
from lifelong.data.ingest import iter_dataset_files
from lifelong.data.pool import PruneRecord
from lifelong.layout import write_json
from lifelong.run_config import DatasetEntry


# ---- round 0 -------------------------------------------------------------------------
def setup(run, t, d, entries):
    """Every dataset's held-out split and every suite in, the fresh adapter saved as round 0's, the base model
    evaluated on every task (lifelong/evaluation/columns.py says which tasks)."""
    run.cfg.eval.validate()
    if run.main:
        for e in entries:
            ingest_test(run, e, 0)
        ingest_suites(run, 0)
        if not run.layout.has_adapter(0):
            run.models.fresh()
            run.save_adapter(0)
    run.dist.barrier()  # test splits, suites and the round-0 adapter are there
    columns, _ = run_columns(run, 0, entries)
    names = [c.task for c in columns]
    row = evaluate(run, 0, run.layout.predictions(0), columns, names)
    return {"row": [row[n] for n in names], "tasks": names,
            "datasets": [e.name for e in entries if e.test]}  # whose held-out split came in here


# ---- ingest ------------------------------------------------------------------------------
def ingest(run, t, d, entry, entries):
    from lifelong.evaluation.columns import held_out

    reports = []
    for f in iter_dataset_files(Path(entry.train), split="train"):
        rep = ingest_file(run.pool, f, dataset=entry.name, split="train", fmt=entry.format, round_added=t,
                          image_root=entry.images or None, cfg=run.cfg.ingest)
        print(rep.summary())
        reports.append(rep)
    info = {"dataset": entry.name, "added": sum(r.added for r in reports),
            "unchanged": sum(r.unchanged for r in reports),
            "quarantined": sum(len(r.quarantined) for r in reports)}
    if info["added"] + info["unchanged"] == 0:
        raise ValueError(f"round {t}: dataset {entry.name!r} ({entry.train}) has no valid training sample "
                         f"({info['quarantined']} quarantined, see {run.pool.root / 'quarantine'})")
    if run.pool.count(status=None, split=run.cfg.eval.split, dataset=entry.name) == 0:
        info["test_added"] = ingest_test(run, entry, t)  # it arrived after setup
    # The task labels its training records teach (lifelong/evaluation/columns.py); a label no
    # held-out question carries is taught but not evaluated: said here, not left to be noticed.
    info["tasks"] = [g.task for g in held_out(run.pool, "train") if g.source == entry.name]
    tested = {g.task for g in held_out(run.pool, run.cfg.eval.split)}
    info["not_evaluated"] = [k for k in info["tasks"] if k not in tested]
    if info["not_evaluated"]:
        print(f"round {t}: dataset {entry.name!r} teaches tasks no held-out question evaluates: "
              f"{', '.join(info['not_evaluated'])} (add a test split or an evaluation suite that carries them)")
    write_json(run.layout.ingest_report(t), info)
    return info


def ingest_test(run, entry: DatasetEntry, t: int) -> int:
    """Ingest ``entry``'s held-out split (if it has one) as of round ``t``; returns the samples added.

    A held-out split that gives no question, or whose labels miss a task
    ``eval.task_metrics`` names after the dataset, is an error here
    (:func:`lifelong.evaluation.columns.check_held_out`).
    """
    from lifelong.evaluation.columns import check_held_out, held_out

    added, quarantined = 0, 0
    for f in iter_dataset_files(Path(entry.test), split="test") if entry.test else ():
        rep = ingest_file(run.pool, f, dataset=entry.name, split=run.cfg.eval.split, fmt=entry.format,
                          round_added=t, image_root=entry.images or None, cfg=run.cfg.ingest)
        print(rep.summary())
        added += rep.added
        quarantined += len(rep.quarantined)
    if entry.test:
        check_held_out(entry.name, "dataset", entry.test, held_out(run.pool, run.cfg.eval.split),
                       run.cfg.eval.task_metrics, quarantined)
    return added


def ingest_suites(run, t: int) -> list[str]:
    """Ingest the configured evaluation suites not in the pool yet, as of round ``t``; returns their names."""
    from lifelong.evaluation.suites import ingest_suite, pending_suites, suite_problems

    problems = suite_problems(run.cfg.eval.suites, [d for d in run.pool.datasets()
                                                    if d not in {s.name for s in run.cfg.eval.suites}])
    if problems:
        raise ValueError("; ".join(problems))
    todo = pending_suites(run.pool, run.cfg.eval.suites, run.cfg.eval.split)
    for suite in todo:
        ingest_suite(run.pool, suite, run.cfg.eval, t, run.cfg.ingest)
    return [s.name for s in todo]


# ---- score and select ----------------------------------------------------------------------
def score(run, t, d, entry, entries):
    """Score the active pool (under ``score.refresh`` < 1: the new and the stalest samples) into
    ``columns/``, round ``t``'s self-contained column store; then delete every earlier round's."""
    if not run.strategy.needs_scores or run.skips_training(t, entries):
        return {"skipped": True}
    from lifelong.selection import score_store as store
    from lifelong.selection.score import plan_rescoring, score_samples

    ids = run.pool.ids()  # ids only: each shard's samples are fetched when its turn comes
    cfg = run.strategy.score_config(run.seeded(t).score)
    todo, sources, held_by = ids, None, None
    if cfg.refresh < 1.0:
        # Partial refresh: score new samples and the stalest share of the old
        # ones; the rest keep the scores of the round that last scored them,
        # copied forward from the previous round's store (which holds them all).
        held_by, previous = score_sources(run, t - 1)
        rows, sources = plan_rescoring(ids, previous, t, cfg.refresh)
        todo = [ids[i] for i in rows]
    if not store.is_complete(run.layout.score_columns(t)):
        score_samples(run.scoring_model(t - 1), run.pool.view(todo), run.pool.load_image, cfg, d / "shards",
                      rank=run.rank, world=run.world, progress=run.main, sketch=run.strategy.sketches)
        run.dist.barrier()  # every process's shards are written
        if run.main:
            if sources is not None:
                write_json(run.layout.score_sources(t), sources)
            prev = None if held_by is None else run.layout.score_columns(held_by)
            store.build_round_store(d, t, ids, todo, sources, held_by, prev, cfg.shard_size)
    if run.main:
        store.release_before(run.layout, t)
    if sources is None:
        return {"n": len(ids)}
    return {"n": len(todo), "pool_size": len(ids)}


def score_sources(run, t) -> tuple[int | None, dict[str, int]]:
    """(round whose column store holds the rows, sample id -> the round that last scored it), as of
    round ``t``'s scoring pass: the latest pass at or before t; a whole-pool pass (refresh was 1
    then) reuses nothing, so it gives (None, {})."""
    for r in range(t, 0, -1):
        path = run.layout.score_sources(r)
        if path.exists():
            return r, json.loads(path.read_text())
        if run.layout.stage_info(r, "score").get("n") is not None:
            return None, {}
    return None, {}


def scores(run, t):
    """Round ``t``'s scores for its active pool, memory-mapped (None when the round scored nothing)."""
    from lifelong.selection.score_store import is_complete, open_scores

    d = run.layout.score_columns(t)
    if not is_complete(d):
        if run.layout.stage_info(t, "score").get("n") is not None:
            raise FileNotFoundError(f"round {t}'s scores are gone ({d}); delete {d.parent} to score again")
        return None
    return open_scores(d)


def select(run, t, d, entry, entries):
    from lifelong.selection.outputs import write_selection
    from lifelong.selection.strategies import SelectionInput

    if run.skips_training(t, entries):
        return {"skipped": True}
    # Task labels and provenance (defect flags) only for the yardsticks that declare reading them.
    inp = SelectionInput.from_pool(run.pool, entry.name, provenance=run.strategy.reads_provenance)
    res = scores(run, t)
    if res is not None:
        try:
            inp.add_scores(res)
        except ValueError as e:
            raise RuntimeError(f"round {t}: {e}; delete {d.parent / 'score'}") from None
    sel = run.strategy.fn(inp, run.seeded(t).select)
    new = int(np.count_nonzero(inp.is_new[sel.indices]))  # of the dataset that arrived this round
    write_selection(d, inp.ids, sel, res.scores if res is not None else None,
                    round=t, dataset=entry.name, strategy=run.cfg.select.strategy, new_selected=new)
    return {"selected": len(sel.indices), "pool_size": len(inp.ids), "new_selected": new}


# ---- train ------------------------------------------------------------------------------------
def train(run, t, d, entry, entries):
    from lifelong.training.train import train_round

    loaded = run.models.for_training(t)  # merge policy: round t-1 folded in, a fresh adapter
    losses = []
    if not run.skips_training(t, entries):
        ids = json.loads(run.layout.selection(t).read_text())["ids"]
        offset = steps_before(run, t)
        losses = train_round(loaded, run.pool.get(ids), run.pool.load_image, run.seeded(t).train, t,
                             on_log=lambda v, s: run.tracker.log(v, step=s + offset))
    if run.main:
        write_json(run.layout.losses(t), losses)
        run.save_adapter(t)
    run.models.trained(t)  # DDP leaves the same weights on every process
    return {"steps": len(losses), "final_loss": losses[-1][1] if losses else None}


def steps_before(run, t: int) -> int:
    """Optimizer steps of rounds 1..t-1, so that round t's loss curve continues theirs on the trackers."""
    total = 0
    for r in range(1, t):
        path = run.layout.losses(r)
        losses = json.loads(path.read_text()) if path.exists() else []
        total += int(losses[-1][0]) if losses else 0  # the last record is at the round's last step
    return total


# ---- prune --------------------------------------------------------------------------------------
def prune(run, t, d, entry, entries):
    from lifelong.pruning.partition import partition, selection_partition
    from lifelong.pruning.semdedup import semdedup
    from lifelong.pruning.uniform import evict_uniform

    cfg = run.strategy.prune_config(run.seeded(t).prune)  # random_prune evicts uniformly
    cap = cfg.cap
    decision = run.layout.pruned(t)
    if not decision.exists():
        ids = run.pool.ids()
        records = []
        if cap is not None and len(ids) > cap:
            if cfg.mode == "uniform":
                res = evict_uniform(len(ids), cap, cfg.cluster.seed)  # the partition's per-round seed
            else:
                emb = (content_embeddings(run, t, ids) if cfg.features == "content"
                       else embeddings(run, t, ids))  # (N, D) memmap
                clusters = (selection_partition(emb, run.layout.scores_table(t), ids)
                            if cfg.mode == "quota" else partition(emb, cfg.cluster))  # select's, or pruning's own
                res = semdedup(emb, clusters.labels, clusters.centroids, cfg,
                               dataset_groups(run.pool, ids) if cfg.thin == "dataset" else None)
                del emb
            records = [{"id": ids[i], "cluster": int(c), "max_sim": float(m) if np.isfinite(m) else None,
                        "reason": str(why), "duplicate_of": ids[k] if k >= 0 else None}
                       for i, c, m, why, k in zip(res.index, res.cluster, res.max_sim, res.reason, res.duplicate_of)]
        write_json(decision, {"round": t, "cap": cap, "pool_size": len(ids), "records": records})
    run.layout.prune_embeddings(t).unlink(missing_ok=True)
    records = json.loads(decision.read_text())["records"]
    # Applying is idempotent: a crash after the pool commit but before the
    # marker re-applies nothing.
    todo = [r for r in records if (run.pool.lookup(r["id"]) or ("", ""))[1] == "active"]
    run.pool.prune([PruneRecord(r["id"], t, r["reason"], r["cluster"], r["max_sim"], r.get("duplicate_of"))
                    for r in todo])
    compacted = run.pool.compact() if records else False  # pruned content leaves the file too
    return {"pruned": len(records), "pool_size": run.pool.count(), "compacted": compacted}


def dataset_groups(pool, ids) -> np.ndarray:
    """(N,) int64 the dataset of each of ``ids`` as a number (datasets in name order)."""
    of = {lab.id: lab.dataset for lab in pool.labels(ids)}
    number = {name: k for k, name in enumerate(sorted(set(of.values())))}
    return np.array([number[of[i]] for i in ids], dtype=np.int64)


def content_embeddings(run, t, ids) -> np.ndarray:
    """Content features (N, D) of the pool for pruning (``prune.features: content``; no model),
    memory-mapped from ``rounds/<t>/prune/embeddings.npy`` (deleted once the decision is made)."""
    from lifelong.pruning.content import content_features

    out = run.layout.prune_embeddings(t)
    out.parent.mkdir(parents=True, exist_ok=True)
    return content_features(run.pool.view(ids), run.pool.load_image, out=out)


def embeddings(run, t, ids) -> np.ndarray:
    """Pool embeddings (N, H) for pruning, memory-mapped, all from one model: this round's
    scoring pass when it scored the whole pool, else the model after round t, written to
    ``rounds/<t>/prune/embeddings.npy`` (deleted once the decision is made). (Under
    score.refresh < 1 the store holds embeddings of several rounds' models, which are not
    comparable.)"""
    if not run.layout.score_sources(t).exists():
        res = scores(run, t)
        if res is not None and res.ids == ids:
            return res.embeddings
    from lifelong.selection.score import embed_samples

    out = run.layout.prune_embeddings(t)
    out.parent.mkdir(parents=True, exist_ok=True)
    return embed_samples(run.scoring_model(t), run.pool.view(ids), run.pool.load_image, run.cfg.score, out=out)


# ---- eval and report ------------------------------------------------------------------------------
def eval_stage(run, t, d, entry, entries):
    """Row t of the accuracy matrix over every task, and the earlier cells this round makes due (:func:`missing_cells`)."""
    if run.main:
        ingest_suites(run, t)  # suites added to the config of a started run
    run.dist.barrier()
    columns, versions = run_columns(run, t, entries)
    names = [c.task for c in columns]
    backfill = {str(r): evaluate(run, r, run.layout.backfill_predictions(t, r), columns, tasks)
                for r, tasks in missing_cells(run, t, names, versions).items()}
    if run.skips_training(t, entries):
        return {"row": [float("nan")] * len(names), "tasks": names, "skipped": True, "backfill": backfill}
    row = evaluate(run, t, run.layout.predictions(t), columns, names)
    return {"row": [row[n] for n in names], "tasks": names, "backfill": backfill}


def run_columns(run, t, entries):
    """(the accuracy matrix's columns as of round ``t``, task -> version); see lifelong/evaluation/columns.py."""
    from lifelong.evaluation.reporting import run_columns as columns_of
    from lifelong.evaluation.suites import sources

    return columns_of(run.layout, run.pool, t, sources([(e.name, e.metric) for e in entries], run.cfg.eval),
                      run.cfg.eval)


def missing_cells(run, t, tasks: list[str], versions: dict[str, int]) -> dict[int, list[str]]:
    """Earlier rounds -> the tasks of ``tasks`` with no valid accuracy in that round's row.

    A cell is missing when its task arrived after that row was measured (a
    dataset or suite that came later), or stale when the task's question set
    grew since (a later dataset's held-out records carry its label): the
    column is then measured again, so every cell of it answers the same
    questions (lifelong/evaluation/columns.py). ``eval.backfill``: ``all``
    evaluates every earlier saved adapter, ``fwt`` only the base (row 0) and
    round t-1, the two cells forward transfer needs (the other stale cells
    stay empty); rounds whose evaluation was skipped stay empty.
    """
    from lifelong.evaluation.reporting import accuracy_cells

    cells = accuracy_cells(run.layout, t - 1, tasks, versions)
    rounds = range(t) if run.cfg.eval.backfill == "all" else sorted({0, t - 1})
    out = {}
    for r in rounds:
        if r > 0 and run.layout.stage_info(r, "eval").get("skipped"):
            continue
        todo = [k for k in tasks if k not in cells[r]]
        if todo:
            out[r] = todo
    return out


def evaluate(run, t, predictions: Path, columns, tasks) -> dict[str, float]:
    """Accuracy of the model after round ``t`` on ``tasks`` (each with its column's metric); per-question
    predictions to ``predictions``."""
    from lifelong.evaluation.evaluate import evaluate_tasks, write_predictions

    cfg = dataclasses.replace(run.cfg.eval, task_metrics={c.task: c.metric for c in columns})
    res = evaluate_tasks(run.dist.ShardedGenerator(run.model(t)), run.pool, tasks, cfg, progress=run.main)
    if run.main:
        write_predictions(res, predictions)
    return {name: float(res.accuracy[name]) for name in tasks}


def report(run, t, d, entry, entries):
    from lifelong.evaluation.composition import write_round_composition
    from lifelong.evaluation.reporting import report_round
    from lifelong.evaluation.suites import sources

    write_round_composition(run.layout, run.pool, t)  # before the report purges pruned rows
    report_round(run.layout, run.pool, t, [e.name for e in entries], run.cfg.name, run.cfg.select.strategy,
                 run.tracker, sources([(e.name, e.metric) for e in entries], run.cfg.eval), run.cfg.eval)
    return {}


ROUND = {"ingest": ingest, "score": score, "select": select, "train": train, "prune": prune, "eval": eval_stage,
         "report": report}
