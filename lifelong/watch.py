"""``lifelong watch``: the task-stream manager that turns dataset folders dropped into an inbox into
rounds of a live run (the folders' shape: :mod:`lifelong.arrivals`).

The watcher takes folders from an inbox (default ``<run>/inbox``). A folder is
complete when a ``READY`` file appears in it, or, with ``--stable-after S``,
when its files have not changed (names, sizes, mtimes) for S seconds. Complete
folders become rounds in arrival order (the time they became complete, then
the name). A folder is *claimed* by moving it into ``<run>/arrivals/<name>``
and appending its entry to the run's ``config.yaml``; then the run's loop
trains its round like any other. A folder that cannot become a round (no
training split, no valid training record, a name the run already has, a bad
``dataset.yaml``) goes to ``<inbox>/quarantine/<folder>`` with a
``REASON.txt``, and the watcher goes on. Every claim and refusal is a line of
``<run>/arrivals/events.jsonl``.

Crash safety: a claim is a rename followed by an atomic config write; a
watcher killed between the two finds the claimed folder on restart and appends
it then, and the loop's stage markers resume the round, so a watcher killed at
any moment and restarted ends in the state of one that was never killed.
SIGTERM stops the watcher after the stage in progress.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

from lifelong.config import ConfigError
from lifelong.loop import FAULT_ENV
from lifelong.layout import RunLayout
from lifelong.run_config import DatasetEntry, RunConfig, load_run_config
from lifelong.arrivals import READY, ArrivalError, Inbox, append_entry, check, resolve


class Watcher:
    """The task-stream manager of one run (see the module docstring)."""

    def __init__(self, cfg: RunConfig, inbox: Path, poll: float = 5.0, stable_after: float | None = None,
                 log=print):
        self.cfg = cfg
        self.inbox = Inbox(inbox, stable_after)
        self.poll = poll
        self.log = log
        self.stop = threading.Event()
        self.arrivals = RunLayout(cfg.run_dir).arrivals

    def event(self, kind: str, **fields) -> None:
        self.arrivals.mkdir(parents=True, exist_ok=True)
        rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": kind, **fields}
        with open(self.arrivals / "events.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.log(f"[watch] {kind}: " + ", ".join(f"{k}={v}" for k, v in fields.items()))

    def recover(self) -> None:
        """Finish a claim cut short: a folder moved into ``arrivals/`` that the config does not name yet."""
        named = {e.name for e in self.cfg.stream.datasets}
        for folder in sorted(self.arrivals.iterdir()) if self.arrivals.is_dir() else []:
            if folder.name.startswith("."):  # a copy cut short; its source is still in the inbox
                shutil.rmtree(folder, ignore_errors=True)
            elif folder.is_dir() and folder.name not in named:
                self._append(resolve(folder, folder.name), folder.name)

    def claim(self, folder: Path) -> bool:
        """Make ``folder`` the next round; False (and quarantined) when it cannot be one."""
        try:
            entry = resolve(folder)
            check(entry, self.cfg)
            if (self.arrivals / entry.name).exists():
                raise ArrivalError(f"dataset {entry.name!r} already arrived in run {self.cfg.run_dir}")
        except ArrivalError as e:
            dest = self.inbox.quarantine(folder, str(e))
            self.event("quarantined", folder=folder.name, reason=str(e), moved_to=str(dest))
            return False
        self.arrivals.mkdir(parents=True, exist_ok=True)
        dest = self.arrivals / entry.name
        try:
            os.rename(folder, dest)
        except OSError:  # another file system: copy under a temporary name, then rename
            tmp = self.arrivals / f".{entry.name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(folder, tmp, symlinks=True)
            os.rename(tmp, dest)
            shutil.rmtree(folder)
        if os.environ.get(FAULT_ENV) == f"claim:{entry.name}":  # crash tests: moved, not yet in the config
            os.kill(os.getpid(), signal.SIGKILL)
        self._append(resolve(dest, entry.name), folder.name)
        return True

    def _append(self, entry: DatasetEntry, folder: str) -> None:
        append_entry(self.cfg, entry)
        self.event("claimed", dataset=entry.name, folder=folder, train=entry.train, test=entry.test or None)

    def run_pending(self) -> None:
        from lifelong.loop import run

        run(self.cfg, should_stop=self.stop.is_set)

    def serve(self, once: bool = False) -> None:
        """Train pending rounds, then take arrivals until stopped (``once``: until the inbox is empty)."""
        from lifelong.loop import StopRequested

        try:
            self.recover()
            self.run_pending()
            self.log(f"[watch] watching {self.inbox.root} (put a {READY} file into a dataset folder when it is complete)")
            while not self.stop.is_set():
                ready = self.inbox.ready()
                if not ready:
                    if once:
                        break
                    self.stop.wait(self.poll)
                    continue
                if self.claim(ready[0]):
                    self.run_pending()
                    self.event("round_done", dataset=self.cfg.stream.datasets[-1].name)
        except StopRequested as e:
            self.log(f"[watch] {e}")


STOP_MESSAGE = b"[watch] SIGTERM: stopping after the current stage (send it again to stop at once)\n"


def stop_handler(w: Watcher):
    """The SIGTERM handler of ``w``: the first signal stops it after the current stage, a second at once.

    A handler runs between two bytecodes of the main thread, which may hold
    the stop event's lock at that moment (inside ``stop.wait``) or stdout's
    buffer (inside ``print``): ``Event.set()`` there deadlocks and ``print``
    fails as a reentrant call. So the handler writes its line with a raw
    ``os.write`` and sets the event from a thread of its own, which takes the
    lock once the main thread lets it go.
    """
    def on_term(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            os.write(2, STOP_MESSAGE)
        except OSError:
            pass
        threading.Thread(target=w.stop.set, name="watch-stop", daemon=True).start()

    return on_term


def watch(run_dir: str | Path, inbox: str | Path | None = None, config: str | Path | None = None,
          overrides: list[str] | None = None, poll: float = 5.0, stable_after: float | None = None,
          once: bool = False) -> RunConfig:
    """``lifelong watch``: hold the run's lock and turn inbox folders into rounds until SIGTERM.

    A new run directory needs ``config`` (its name and place come from
    ``run_dir``); an existing one resumes with its own ``config.yaml``.
    """
    from lifelong.run_checks import check_run_config
    from lifelong.runlock import run_lock

    def config_of_run() -> RunConfig:
        if RunLayout(run_dir).config.exists():
            if config is not None or overrides:
                raise ConfigError(f"{run_dir} already has a config.yaml; watch it without --config/overrides")
            cfg = load_run_config(run_dir)
        elif config is None:
            raise ConfigError(f"{run_dir} is not a run directory yet: give --config CONFIG to start one")
        else:
            cfg = load_run_config(config, [*(overrides or []), f"name={run_dir.name}",
                                           f"runs_dir={run_dir.parent}"])
        check_run_config(cfg)
        return cfg

    run_dir = Path(run_dir)
    config_of_run()  # a config to fix is refused before the run directory (or its lock) is made
    with run_lock(run_dir):
        cfg = config_of_run()
        w = Watcher(cfg, Path(inbox) if inbox else RunLayout(run_dir).inbox, poll, stable_after)
        w.inbox.root.mkdir(parents=True, exist_ok=True)

        previous = signal.signal(signal.SIGTERM, stop_handler(w))
        try:
            w.serve(once)
        finally:
            signal.signal(signal.SIGTERM, previous)
    return cfg
