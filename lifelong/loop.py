"""The lifelong loop: one round per arriving dataset, stage after stage.

    setup (round 0): test splits of every task in, evaluation before training
    round t:  ingest → score → select → train → prune → eval → report

A dataset may also arrive after the run started (``lifelong round``, ``lifelong
watch``): it is appended to the run's stream and becomes the next round. Its
test split comes in with its train split, and the eval stage back-fills the
earlier rows of the accuracy matrix for it by evaluating the saved adapters of
earlier rounds (``eval.backfill``), so forward transfer is defined for it too.

Every stage writes its outputs under ``rounds/<t>/<stage>/`` and then a
``done`` marker (with its wall time); a stage reads what earlier stages wrote,
never in-memory leftovers, so a run killed anywhere resumes at the first stage
without a marker and ends with the same result. Every random choice is seeded
from (run seed, round, purpose) (lifelong/seeding.py), and the model state at
the start of a round is always the adapter saved by the round before.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np

from lifelong.data.ingest import ingest, iter_dataset_files
from lifelong.data.pool import Pool, PruneRecord
from lifelong.run_config import DatasetEntry, RunConfig, check_same_config, dump_run_config

# "<round>:<stage>": SIGKILL the process after that stage's work, before its marker
# ("claim:<dataset>": the watcher's claim, lifelong/arrivals.py). Crash tests only.
FAULT_ENV = "LIFELONG_FAULT"
ROUND_STAGES = ("ingest", "score", "select", "train", "prune", "eval", "report")
# Under ``accelerate launch`` these stages run on every process over its share
# (lifelong/distributed.py); the others run on the main process while the rest
# wait. Only the main process writes a stage's files outside its shards, and
# every done marker.
SHARED_STAGES = ("setup", "score", "train", "eval")
EMBEDDINGS_FILE = "embeddings.npy"  # pruning's own embedding pass (score.refresh < 1), until it has decided


def write_json(path: Path, data) -> None:
    """Atomic JSON write (temp file + rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    os.replace(tmp, path)


class StopRequested(Exception):
    """A graceful stop (SIGTERM) was asked for; raised between stages, after a stage's marker."""


class Run:
    """A run directory and the model that moves through it.

    ``should_stop``: polled after every stage; when it returns true the run
    stops there (raising :class:`StopRequested`), every finished stage kept.
    """

    def __init__(self, cfg: RunConfig, force: bool = False, should_stop=None):
        from lifelong import distributed as dist

        self.dist = dist
        self.rank, self.world = dist.rank_world()  # joins the process group first when launched
        self.main = self.rank == 0
        self.cfg = cfg
        self.dir = cfg.run_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        saved = self.dir / "config.yaml"
        if saved.exists():
            check_same_config(saved.read_text(), cfg, force)
        dist.barrier()  # everyone has read the old config before it is replaced
        if self.main:
            saved.write_text(dump_run_config(cfg))
            self.pool = Pool(self.dir / "pool")  # creates the manifest
        dist.barrier()
        if not self.main:
            self.pool = Pool(self.dir / "pool")
        self._tracker = None
        self._should_stop = should_stop or (lambda: False)
        self._seeded: dict[int, RunConfig] = {}
        from lifelong.models.replay import RoundModel

        self.models = RoundModel(self.seeded(0).model, cfg.adapter_policy == "merge", self.adapter_dir)

    # ---- the stream ----------------------------------------------------------
    def entries(self) -> list[DatasetEntry]:
        """Datasets in arrival order: the built-in stream (prepared once) then the user's."""
        out = []
        s = self.cfg.stream
        if s.builtin != "none":
            from lifelong.data.stream import prepare_stream, read_manifest

            data = self.dir / "data"
            if self.main and not (data / "stream.json").exists():
                tmp = self.dir / "data.tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                prepare_stream(tmp, s.builtin, s.seed, cfg=s.builtin_config)
                os.replace(tmp, data)
            self.dist.barrier()
            for info in read_manifest(data):
                out.append(DatasetEntry(info.name, str(data / info.train), str(data / info.test), info.metric))
        out.extend(s.datasets)
        names = [e.name for e in out]
        if len(set(names)) != len(names):
            raise ValueError(f"dataset names in a stream must be unique, got {names}")
        return out

    # ---- stages ----------------------------------------------------------------
    def stage(self, t: int, name: str, fn, *args) -> dict:
        d = self.dir / "rounds" / str(t) / name
        marker = d / "done"
        if marker.exists():
            return json.loads(marker.read_text())
        d.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        info = {}
        if self.main:
            print(f"[{self.cfg.name}] round {t}: {name} ...", flush=True)
        if self.main or name in SHARED_STAGES:
            info = fn(t, d, *args) or {}
        info["seconds"] = round(time.perf_counter() - start, 3)
        self.dist.barrier()  # every process's part is done
        if self.main:
            if os.environ.get(FAULT_ENV) == f"{t}:{name}":
                # Crash-recovery tests: die as hard as possible at the worst moment,
                # with all of the stage's work done but its marker not yet written.
                os.kill(os.getpid(), signal.SIGKILL)
            write_json(marker, info)
        self.dist.barrier()  # the marker is there for everyone
        if self.dist.broadcast_object(bool(self._should_stop())):
            raise StopRequested(f"stopped after round {t}, stage {name}")
        return json.loads(marker.read_text())

    def run(self) -> None:
        entries = self.entries()
        self.stage(0, "setup", self._setup, entries)
        for t, entry in enumerate(entries, start=1):
            for name in ROUND_STAGES:
                self.stage(t, name, getattr(self, f"_{name}"), entry, entries)
        if self.main:
            self.print_timings(len(entries))

    # ---- the model ----------------------------------------------------------------
    def model(self, adapter_round: int):
        """The model as it was after round ``adapter_round`` (``lifelong/models/replay.py``).

        Merges (``merge`` policy) are replayed from the saved adapters, so a
        resumed run rebuilds exactly the state an uninterrupted one had.
        """
        return self.models.at(adapter_round)

    def scoring_model(self, adapter_round: int):
        """What scores the pool: the proxy ``score.model`` (loaded once, fixed) when set, else ``model``."""
        if self.cfg.score.model is None:
            return self.model(adapter_round)
        if getattr(self, "_proxy", None) is None:
            from lifelong.models import load_model

            self._proxy = load_model(self.seeded(0).score.model)
        return self._proxy

    def adapter_dir(self, t: int) -> Path:
        return self.dir / "adapters" / f"round_{t}"

    def save_adapter(self, t: int) -> None:
        final = self.adapter_dir(t)
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.models.loaded.save_adapter(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        self.models.trained(t)

    def seeded(self, t: int) -> RunConfig:
        """The run config with round ``t``'s seeds (``lifelong/seeding.py``): what every random choice reads."""
        from lifelong.seeding import round_config

        if t not in self._seeded:
            self._seeded[t] = round_config(self.cfg, t)
        return self._seeded[t]

    @property
    def strategy(self):
        from lifelong.selection.strategies import get_strategy

        return get_strategy(self.cfg.select.strategy)

    def _skips_training(self, t: int, entries) -> bool:
        """A strategy that trains once, jointly, after the last arrival (multitask) skips the rounds before."""
        return self.strategy.trains_at_end and t < len(entries)

    # ---- round 0 --------------------------------------------------------------------
    def _setup(self, t, d, entries):
        if self.main:
            for e in entries:
                self._ingest_test(e, 0)
            if not self.adapter_dir(0).exists():
                self.models.fresh()
                self.save_adapter(0)
        self.dist.barrier()  # test splits and the round-0 adapter are there
        names = [e.name for e in entries]
        row = self._evaluate(0, d / "predictions.jsonl", entries, names)
        return {"row": [row[n] for n in names], "tasks": names}

    # ---- round t ----------------------------------------------------------------------
    def _ingest(self, t, d, entry, entries):
        reports = []
        for f in iter_dataset_files(Path(entry.train), split="train"):
            rep = ingest(self.pool, f, dataset=entry.name, split="train", fmt=entry.format, round_added=t,
                         cfg=self.cfg.ingest)
            print(rep.summary())
            reports.append(rep)
        info = {"dataset": entry.name, "added": sum(r.added for r in reports),
                "unchanged": sum(r.unchanged for r in reports),
                "quarantined": sum(len(r.quarantined) for r in reports)}
        if info["added"] + info["unchanged"] == 0:
            raise ValueError(f"round {t}: dataset {entry.name!r} ({entry.train}) has no valid training sample "
                             f"({info['quarantined']} quarantined, see {self.pool.root / 'quarantine'})")
        if self.pool.count(status=None, split=self.cfg.eval.split, dataset=entry.name) == 0:
            info["test_added"] = self._ingest_test(entry, t)  # it arrived after setup
        write_json(d / "ingest.json", info)
        return info

    def _ingest_test(self, entry: DatasetEntry, t: int) -> int:
        """Ingest ``entry``'s held-out split (if it has one) as of round ``t``; returns the samples added."""
        added = 0
        for f in iter_dataset_files(Path(entry.test), split="test") if entry.test else ():
            rep = ingest(self.pool, f, dataset=entry.name, split=self.cfg.eval.split, fmt=entry.format,
                         round_added=t, cfg=self.cfg.ingest)
            print(rep.summary())
            added += rep.added
        return added

    def _score(self, t, d, entry, entries):
        """Score the active pool (under ``score.refresh`` < 1: the new and the stalest samples) into
        ``columns/``, round ``t``'s self-contained column store; then delete every earlier round's."""
        if not self.strategy.needs_scores or self._skips_training(t, entries):
            return {"skipped": True}
        from lifelong.selection import score_store as store
        from lifelong.selection.score import plan_rescoring, score_samples

        ids = self.pool.ids()  # ids only: each shard's samples are fetched when its turn comes
        cfg = self.strategy.score_config(self.seeded(t).score)
        todo, sources, held_by = ids, None, None
        if cfg.refresh < 1.0:
            # Partial refresh: score new samples and the stalest share of the old
            # ones; the rest keep the scores of the round that last scored them,
            # copied forward from the previous round's store (which holds them all).
            held_by, previous = self._score_sources(t - 1)
            rows, sources = plan_rescoring(ids, previous, t, cfg.refresh)
            todo = [ids[i] for i in rows]
        view = d / "columns"
        if not store.is_complete(view):
            score_samples(self.scoring_model(t - 1), self.pool.view(todo), self.pool.load_image, cfg, d / "shards",
                          rank=self.rank, world=self.world, progress=self.main, sketch=self.strategy.sketches)
            self.dist.barrier()  # every process's shards are written
            if self.main:
                if sources is not None:
                    write_json(d / "sources.json", sources)
                prev = None if held_by is None else self.dir / "rounds" / str(held_by) / "score" / "columns"
                store.build_round_store(d, t, ids, todo, sources, held_by, prev, cfg.shard_size)
        if self.main:
            store.release_before(self.dir / "rounds", t)
        if sources is None:
            return {"n": len(ids)}
        return {"n": len(todo), "pool_size": len(ids)}

    def _score_sources(self, t) -> tuple[int | None, dict[str, int]]:
        """(round whose column store holds the rows, sample id -> the round that last scored it), as of
        round ``t``'s scoring pass: the latest pass at or before t; a whole-pool pass (refresh was 1
        then) reuses nothing, so it gives (None, {})."""
        for r in range(t, 0, -1):
            path = self.dir / "rounds" / str(r) / "score" / "sources.json"
            if path.exists():
                return r, json.loads(path.read_text())
            info = self.stage_info(r, "score")
            if info.get("n") is not None:
                return None, {}
        return None, {}

    def _scores(self, t):
        """Round ``t``'s scores for its active pool, memory-mapped (None when the round scored nothing)."""
        from lifelong.selection.score_store import is_complete, open_scores

        d = self.dir / "rounds" / str(t) / "score" / "columns"
        if not is_complete(d):
            if self.stage_info(t, "score").get("n") is not None:
                raise FileNotFoundError(f"round {t}'s scores are gone ({d}); delete {d.parent} to score again")
            return None
        return open_scores(d)

    def _select(self, t, d, entry, entries):
        from lifelong.selection.outputs import write_selection
        from lifelong.selection.strategies import SelectionInput

        if self._skips_training(t, entries):
            return {"skipped": True}
        ids = self.pool.ids()
        new = set(self.pool.ids(dataset=entry.name))
        inp = SelectionInput(ids, np.array([i in new for i in ids], dtype=bool))
        scores = self._scores(t)
        if scores is not None:
            if scores.ids != ids:
                raise RuntimeError(f"round {t}: scored samples differ from the active pool; delete {d.parent / 'score'}")
            inp.sketches, inp.scores = scores.sketches, scores.scores  # memmaps: read by column and row range
        sel = self.strategy.fn(inp, self.seeded(t).select)
        write_selection(d, ids, sel, scores.scores if scores is not None else None,
                        round=t, dataset=entry.name, strategy=self.cfg.select.strategy)
        return {"selected": len(sel.indices), "pool_size": len(ids)}

    def _train(self, t, d, entry, entries):
        from lifelong.training.train import train_round

        loaded = self.models.for_training(t)  # merge policy: round t-1 folded in, a fresh adapter
        losses = []
        if not self._skips_training(t, entries):
            ids = json.loads((d.parent / "select" / "selection.json").read_text())["ids"]
            losses = train_round(loaded, self.pool.get(ids), self.pool.load_image, self.seeded(t).train, t,
                                 on_log=lambda v, s, offset=self._steps_before(t): self.tracker.log(v, step=s + offset))
        if self.main:
            write_json(d / "losses.json", losses)
            self.save_adapter(t)
        self.models.trained(t)  # DDP leaves the same weights on every process
        return {"steps": len(losses), "final_loss": losses[-1][1] if losses else None}

    def _steps_before(self, t: int) -> int:
        """Optimizer steps of rounds 1..t-1, so that round t's loss curve continues theirs on the trackers."""
        total = 0
        for r in range(1, t):
            path = self.dir / "rounds" / str(r) / "train" / "losses.json"
            losses = json.loads(path.read_text()) if path.exists() else []
            total += int(losses[-1][0]) if losses else 0  # the last record is at the round's last step
        return total

    def _prune(self, t, d, entry, entries):
        from lifelong.pruning.partition import partition
        from lifelong.pruning.semdedup import semdedup

        cap = self.cfg.prune.cap
        decision = d / "pruned.json"
        if not decision.exists():
            ids = self.pool.ids()
            records = []
            if cap is not None and len(ids) > cap:
                emb = self._embeddings(t, ids)  # (N, H) memmap
                clusters = partition(emb, self.seeded(t).prune.cluster)  # pruning's own small clusters
                res = semdedup(emb, clusters.labels, clusters.centroids, self.cfg.prune)
                del emb
                records = [{"id": ids[i], "cluster": int(c), "max_sim": float(m) if np.isfinite(m) else None,
                            "reason": str(why), "duplicate_of": ids[d] if d >= 0 else None}
                           for i, c, m, why, d in zip(res.index, res.cluster, res.max_sim, res.reason, res.duplicate_of)]
            write_json(decision, {"round": t, "cap": cap, "pool_size": len(ids), "records": records})
        (d / EMBEDDINGS_FILE).unlink(missing_ok=True)
        records = json.loads(decision.read_text())["records"]
        # Applying is idempotent: a crash after the pool commit but before the
        # marker re-applies nothing.
        todo = [r for r in records if (self.pool.lookup(r["id"]) or ("", ""))[1] == "active"]
        self.pool.prune([PruneRecord(r["id"], t, r["reason"], r["cluster"], r["max_sim"]) for r in todo])
        compacted = self.pool.compact() if records else False  # pruned content leaves the file too
        return {"pruned": len(records), "pool_size": self.pool.count(), "compacted": compacted}

    def _embeddings(self, t, ids) -> np.ndarray:
        """Pool embeddings (N, H) for pruning, memory-mapped, all from one model: this round's
        scoring pass when it scored the whole pool, else the model after round t, written to
        ``rounds/<t>/prune/embeddings.npy`` (deleted once the decision is made). (Under
        score.refresh < 1 the store holds embeddings of several rounds' models, which are not
        comparable.)"""
        d = self.dir / "rounds" / str(t) / "score"
        if not (d / "sources.json").exists():
            scores = self._scores(t)
            if scores is not None and scores.ids == ids:
                return scores.embeddings
        from lifelong.selection.score import embed_samples

        out = self.dir / "rounds" / str(t) / "prune" / EMBEDDINGS_FILE
        out.parent.mkdir(parents=True, exist_ok=True)
        return embed_samples(self.scoring_model(t), self.pool.view(ids), self.pool.load_image, self.cfg.score,
                             out=out)

    def _eval(self, t, d, entry, entries):
        names = [e.name for e in entries]
        backfill = {str(r): self._evaluate(r, d / "backfill" / f"round_{r}.jsonl", entries, tasks)
                    for r, tasks in self._missing_cells(t, entries).items()}
        if self._skips_training(t, entries):
            return {"row": [float("nan")] * len(entries), "tasks": names, "skipped": True, "backfill": backfill}
        row = self._evaluate(t, d / "predictions.jsonl", entries, names)
        return {"row": [row[n] for n in names], "tasks": names, "backfill": backfill}

    def _missing_cells(self, t, entries) -> dict[int, list[str]]:
        """Earlier rounds -> tasks with a held-out split but no accuracy in that round's row.

        These are datasets that arrived after those rounds were evaluated.
        ``eval.backfill``: ``all`` evaluates every earlier saved adapter on
        them, ``fwt`` only the base (row 0) and round t-1, the two cells
        forward transfer needs; rounds whose evaluation was skipped stay empty.
        """
        from lifelong.evaluation.reporting import accuracy_cells

        held_out = set(self.pool.datasets(split=self.cfg.eval.split))
        cells = accuracy_cells(self, t - 1, entries)
        rounds = range(t) if self.cfg.eval.backfill == "all" else sorted({0, t - 1})
        out = {}
        for r in rounds:
            if r > 0 and self.stage_info(r, "eval").get("skipped"):
                continue
            todo = [e.name for e in entries if e.name in held_out and e.name not in cells[r]]
            if todo:
                out[r] = todo
        return out

    def _evaluate(self, t, predictions: Path, entries, tasks) -> dict[str, float]:
        """Accuracy of the model after round ``t`` on ``tasks``; per-question predictions to ``predictions``."""
        from lifelong.evaluation.evaluate import evaluate_tasks, write_predictions

        import dataclasses

        metrics = {e.name: e.metric for e in entries}
        cfg = dataclasses.replace(self.cfg.eval, task_metrics={**metrics, **self.cfg.eval.task_metrics})
        res = evaluate_tasks(self.dist.ShardedGenerator(self.model(t)), self.pool, tasks, cfg, progress=self.main)
        if self.main:
            predictions.parent.mkdir(parents=True, exist_ok=True)
            write_predictions(res, predictions)
        return {name: float(res.accuracy[name]) for name in tasks}

    def _report(self, t, d, entry, entries):
        from lifelong.evaluation.reporting import report_round

        report_round(self, t, entries)
        return {}

    @property
    def tracker(self):
        if self._tracker is None:
            from lifelong.evaluation.trackers import Tracker

            self._tracker = Tracker(self.cfg.tracker, self.dir, self.cfg.name)
        return self._tracker

    def stage_info(self, t: int, name: str) -> dict:
        p = self.dir / "rounds" / str(t) / name / "done"
        return json.loads(p.read_text()) if p.exists() else {}

    def print_timings(self, n_rounds: int) -> None:
        print(f"\nwall time per stage (s), run {self.cfg.name}:")
        print("round " + " ".join(f"{s:>8}" for s in ROUND_STAGES))
        total = self.stage_info(0, "setup").get("seconds", 0.0)
        for t in range(1, n_rounds + 1):
            secs = [self.stage_info(t, s).get("seconds", float("nan")) for s in ROUND_STAGES]
            total += np.nansum(secs)
            print(f"{t:>5} " + " ".join(f"{x:8.1f}" for x in secs))
        print(f"total {total:.1f} s (setup and evaluation before training included)")


def run(cfg: RunConfig, force: bool = False, should_stop=None) -> Run:
    """Run (or resume) every round of ``cfg``'s stream, holding the run directory's writer lock.

    Raises :class:`lifelong.runlock.RunLocked` at once, before writing
    anything, when another process is writing the run; :class:`StopRequested`
    when ``should_stop()`` turned true (checked after every stage).
    """
    from contextlib import ExitStack

    from lifelong import distributed as dist
    from lifelong.runlock import RunLocked, run_lock

    with ExitStack() as held:
        refused: dict | None = None
        if dist.rank_world()[0] == 0:  # one lock per run, held by the main process
            try:
                held.enter_context(run_lock(cfg.run_dir))
            except RunLocked as e:
                refused = e.holder
        refused = dist.broadcast_object(refused)
        if refused is not None:
            raise RunLocked(cfg.run_dir, refused)
        r = Run(cfg, force, should_stop)
        try:
            r.run()
        finally:
            if r._tracker is not None:
                r._tracker.close()
    return r
