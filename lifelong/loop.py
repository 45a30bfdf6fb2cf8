"""The lifelong loop: one round per arriving dataset, stage after stage.

    setup (round 0): test splits of every task in, evaluation before training
    round t:  ingest → score → select → train → prune → eval → report

A dataset may also arrive after the run started (``lifelong round``, ``lifelong
watch``): it is appended to the run's stream and becomes the next round. Its
test split comes in with its train split, and the eval stage back-fills the
earlier rows of the accuracy matrix for it by evaluating the saved adapters of
earlier rounds (``eval.backfill``), so forward transfer is defined for it too.

Every stage (lifelong/stages.py says what each does) writes its outputs under
``rounds/<t>/<stage>/`` (lifelong/layout.py names every path of a run) and then
a ``done`` marker (with its wall time); a stage reads what earlier stages wrote,
never in-memory leftovers, so a run killed anywhere resumes at the first stage
without a marker and ends with the same result. Every random choice is seeded
from (run seed, round, purpose) (lifelong/seeding.py), and the model state at
the start of a round is always the adapter saved by the round before.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import time

import numpy as np

from lifelong import stages
from lifelong.data.pool import Pool
from lifelong.layout import RunLayout, write_json
from lifelong.run_config import DatasetEntry, RunConfig, save_run_config
from lifelong.run_checks import check_run_config, check_same_config, with_default_test

# "<round>:<stage>": SIGKILL the process after that stage's work, before its marker
# ("claim:<dataset>": the watcher's claim, lifelong/watch.py). Crash tests only.
FAULT_ENV = "LIFELONG_FAULT"
ROUND_STAGES = ("ingest", "score", "select", "train", "prune", "eval", "report")
# Under ``accelerate launch`` these stages run on every process over its share
# (lifelong/distributed.py); the others run on the main process while the rest
# wait. Only the main process writes a stage's files outside its shards, and
# every done marker.
SHARED_STAGES = ("setup", "score", "train", "eval")


class StopRequested(Exception):
    """A graceful stop (SIGTERM) was asked for; raised between stages, after a stage's marker."""


class Run:
    """A run directory and the model that moves through it.

    ``should_stop``: polled after every stage; when it returns true the run
    stops there (raising :class:`StopRequested`), every finished stage kept.
    """

    def __init__(self, cfg: RunConfig, force: bool = False, should_stop=None):
        from lifelong import distributed as dist
        from lifelong.models.replay import RoundModel

        self.dist = dist
        self.rank, self.world = dist.rank_world()  # joins the process group first when launched
        self.main = self.rank == 0
        self.cfg = cfg
        self.dir = cfg.run_dir
        self.layout = RunLayout(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.layout.config.exists():
            check_same_config(self.layout.config.read_text(), cfg, force)
            check_run_config(cfg)  # datasets that round/watch appended are the run's too
        dist.barrier()  # everyone has read the old config before it is replaced
        if self.main:
            save_run_config(cfg)
            self.pool = Pool(self.layout.pool)  # creates the manifest
        dist.barrier()
        if not self.main:
            self.pool = Pool(self.layout.pool)
        self._tracker = None
        self._should_stop = should_stop or (lambda: False)
        self._seeded: dict[int, RunConfig] = {}
        self.models = RoundModel(self.seeded(0).model, cfg.adapter_policy == "merge", self.layout)

    # ---- the round ---------------------------------------------------------------
    def run(self) -> None:
        entries = self.entries()
        self.stage(0, "setup", stages.setup, entries)
        for t, entry in enumerate(entries, start=1):
            for name in ROUND_STAGES:
                self.stage(t, name, stages.ROUND[name], entry, entries)
        if self.main:
            self.print_timings(len(entries))

    def stage(self, t: int, name: str, fn, *args) -> dict:
        """Run ``fn(self, t, stage_dir, *args)`` unless its marker says it is done; returns the marker's info."""
        d = self.layout.stage_dir(t, name)
        marker = self.layout.marker(t, name)
        if marker.exists():
            return json.loads(marker.read_text())
        d.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        info = {}
        if self.main:
            print(f"[{self.cfg.name}] round {t}: {name} ...", flush=True)
        if self.main or name in SHARED_STAGES:
            info = fn(self, t, d, *args) or {}
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

    # ---- the stream ----------------------------------------------------------
    def entries(self) -> list[DatasetEntry]:
        """Datasets in arrival order: the built-in stream (prepared once) then the user's."""
        out = []
        s = self.cfg.stream
        if s.builtin != "none":
            from lifelong.data.stream import prepare_stream, read_manifest

            data = self.layout.data
            if self.main and not self.layout.stream_manifest.exists():
                tmp = data.with_name(data.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                prepare_stream(tmp, s.builtin, s.seed, cfg=s.builtin_config)
                os.replace(tmp, data)
            self.dist.barrier()
            infos = read_manifest(data)
            if self.main and s.datasets and not self.layout.marker(0, "setup").exists():
                print(f"[{self.cfg.name}] stream: the built-in '{s.builtin}' stream ({len(infos)} datasets) comes "
                      f"first, then your {len(s.datasets)}; set stream.builtin=none for yours only", flush=True)
            for info in infos:
                # A dataset of the stream whose tasks are held out elsewhere (messy) has no test split.
                test = str(data / info.test) if info.n_test else ""
                out.append(DatasetEntry(info.name, str(data / info.train), test, info.metric))
        out.extend(with_default_test(e, self.cfg.eval.split) for e in s.datasets)
        names = [e.name for e in out]
        if len(set(names)) != len(names):
            raise ValueError(f"dataset names in a stream must be unique, got {names}")
        return out

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
        return self.proxy

    @functools.cached_property
    def proxy(self):
        """The fixed proxy model ``score.model``, loaded on first use (never trained)."""
        from lifelong.models import load_model

        return load_model(self.seeded(0).score.model)

    def save_adapter(self, t: int) -> None:
        """Save the model's adapter as round ``t``'s: written aside, then renamed into place."""
        final = self.layout.adapter_dir(t)
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

    def skips_training(self, t: int, entries) -> bool:
        """A strategy that trains once, jointly, after the last arrival (multitask) skips the rounds before."""
        return self.strategy.trains_at_end and t < len(entries)

    # ---- records ------------------------------------------------------------------
    @property
    def tracker(self):
        if self._tracker is None:
            from lifelong.evaluation.trackers import Tracker

            self._tracker = Tracker(self.cfg.tracker, self.dir, self.cfg.name)
        return self._tracker

    def stage_info(self, t: int, name: str) -> dict:
        return self.layout.stage_info(t, name)

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

    Raises, before writing anything, :class:`lifelong.config.ConfigError`
    naming every problem of the config (values, names, metrics, the paths and
    splits of every dataset still to come) and
    :class:`lifelong.runlock.RunLocked` when another process is writing the
    run; :class:`StopRequested` when ``should_stop()`` turned true (checked
    after every stage).
    """
    from contextlib import ExitStack

    from lifelong import distributed as dist
    from lifelong.runlock import RunLocked, run_lock

    check_run_config(cfg)
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
