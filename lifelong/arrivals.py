"""Datasets that arrive in a live run: ``lifelong round`` and the ``lifelong watch`` task-stream manager.

An arriving dataset is a folder (or, for ``round``, also a single file):

    <name>/dataset.yaml      optional: name, train, test, metric, format (paths relative to the folder)
    <name>/train.json|.jsonl|.parquet, test.json|...   LLaVA JSON, messages JSONL/Parquet
    <name>/                  or a save_to_disk dataset (a DatasetDict's "train"/"test" splits)

Without ``dataset.yaml`` the folder's name names the dataset, its ``train``
file (or ``train/`` folder) is the training split and its ``test`` file (or
folder) the held-out split; a folder without a ``train`` part is all training
data.

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
import re
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lifelong.config import ConfigError, from_dict, load_yaml
from lifelong.loop import FAULT_ENV
from lifelong.layout import RunLayout
from lifelong.run_config import (DatasetEntry, RunConfig, entry_problems, hf_splits, load_run_config, save_run_config,
                                 setup_datasets)

MANIFEST = "dataset.yaml"
READY = "READY"
QUARANTINE = "quarantine"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_EXTS = (".json", ".jsonl", ".parquet")


class ArrivalError(ValueError):
    """A dataset that cannot become a round; the message says why."""


@dataclass
class Manifest:
    """``dataset.yaml`` of an arriving folder; paths are relative to the folder."""

    name: str | None = None
    train: str = ""
    test: str = ""
    metric: str = "exact_match"
    format: str | None = None


def _part(folder: Path, split: str) -> Path | None:
    """``folder``'s file or folder named after ``split`` (``train.json``, ``test/``, ...), if any."""
    for ext in (*_EXTS, ""):
        p = folder / f"{split}{ext}"
        if p.exists():
            return p
    return None


def _inside(folder: Path, rel: str, what: str) -> Path:
    p = (folder / rel).resolve()
    if p != folder.resolve() and folder.resolve() not in p.parents:
        raise ArrivalError(f"{folder / MANIFEST}: {what} path {rel!r} leaves the dataset folder")
    if not p.exists():
        raise ArrivalError(f"{folder / MANIFEST}: {what} path {rel!r} does not exist")
    return p


def resolve(path: str | Path, name: str | None = None) -> DatasetEntry:
    """The stream entry of an arriving dataset (see the module docstring), with absolute paths."""
    path = Path(path).absolute()
    if not path.exists():
        raise ArrivalError(f"{path} does not exist")
    if path.is_file():
        from lifelong.data.ingest import SPLIT_NAMES

        # ``<name>/train.json`` names the dataset after its folder, as ``lifelong ingest`` does.
        stem = path.parent.name if path.stem.lower() in SPLIT_NAMES else path.stem
        entry = DatasetEntry(name or stem, str(path))
    elif (path / MANIFEST).exists():
        try:
            m = from_dict(Manifest, load_yaml(path / MANIFEST))
        except (ConfigError, ValueError, OSError) as e:
            raise ArrivalError(f"{path / MANIFEST}: {e}") from None
        if not m.train:
            raise ArrivalError(f"{path / MANIFEST}: no 'train' path")
        entry = DatasetEntry(name or m.name or path.name, str(_inside(path, m.train, "train")),
                             str(_inside(path, m.test, "test")) if m.test else "", m.metric, m.format)
    else:
        from lifelong.data.ingest import detect_format_safe

        hf = detect_format_safe(path) == "hf"
        train, test = _part(path, "train"), _part(path, "test")
        if hf:
            train, test = path, path if "test" in (hf_splits(path) or set()) else None
        entry = DatasetEntry(name or path.name, str(train or path), str(test) if test else "")
    if not NAME.fullmatch(entry.name):
        raise ArrivalError(f"dataset name {entry.name!r}: use letters, digits, '.', '_' and '-' "
                           "(starting with a letter or digit)")
    return entry


def check(entry: DatasetEntry, cfg: RunConfig) -> None:
    """Raise :class:`ArrivalError` unless ``entry`` can become a round of ``cfg``'s run.

    Its name, format, metric and both paths are checked, and every record of
    both splits is validated (a dry run of ingestion, nothing stored): a
    dataset with no valid training record, or a held-out split with no valid
    record, is refused whole. Bad records of an acceptable dataset are
    quarantined by the round's ingest.
    """
    known = [e.name for e in known_entries(cfg)]
    if entry.name in known:
        t = known.index(entry.name) + 1
        if RunLayout(cfg.run_dir).marker(t, "report").exists():
            raise ArrivalError(f"dataset {entry.name!r} is already part of run {cfg.run_dir} (round {t}); "
                               "give the new one another name with --name")
        raise ArrivalError(f"dataset {entry.name!r} is already part of run {cfg.run_dir}, and its round {t} has "
                           f"not finished: 'lifelong run {cfg.run_dir}' finishes it, "
                           f"'lifelong round --run {cfg.run_dir} --drop {entry.name}' drops it")
    if entry.name in {s.name for s in cfg.eval.suites}:
        raise ArrivalError(f"{entry.name!r} is an evaluation suite of run {cfg.run_dir}; give the dataset "
                           "another name with --name")
    problems = entry_problems(entry, "dataset", eval_split=cfg.eval.split)
    if problems:
        raise ArrivalError("; ".join(problems))
    _check_split(entry.train, entry, "train", "training", cfg)
    if entry.test:
        _check_split(entry.test, entry, cfg.eval.split, "held-out", cfg)


def _check_split(path: str, entry: DatasetEntry, split: str, what: str, cfg: RunConfig) -> None:
    """Dry-run ingestion of ``split`` at ``path``: refused unless at least one record is valid."""
    from lifelong.data.ingest import check_records, iter_dataset_files, record_place
    from lifelong.data.readers import FormatError

    files = list(iter_dataset_files(Path(path), split=split))
    if not files:
        raise ArrivalError(f"{path}: no {split} split (expected {split}.json, {split}.jsonl or {split}.parquet)")
    valid, bad = 0, []
    for f in files:
        try:
            rep = check_records(f, dataset=entry.name, split=split, fmt=entry.format, cfg=cfg.ingest)
        except (FormatError, OSError, ValueError) as e:
            raise ArrivalError(f"{f}: {e}") from None
        valid += rep.added
        bad += rep.quarantined
    if valid == 0:
        first = f"; first problem: {record_place(bad[0])}: {bad[0]['reason']}" if bad else ""
        raise ArrivalError(f"{path}: no valid {what} record ({len(bad)} bad){first}")


def drop(cfg: RunConfig, name: str, log=print) -> None:
    """``lifelong round --run R --drop NAME``: take back an arrival whose round never trained.

    Its samples leave the pool (with images no other sample uses), its round's
    folder goes, a claimed inbox folder moves to ``<run>/inbox/quarantine``,
    and the entry leaves ``config.yaml`` last, so a drop cut short is finished
    by running it again. Raises :class:`ArrivalError` for a dataset the run
    does not have, one of the built-in stream, or one whose round trained or
    whose held-out split was evaluated by setup (the results name it).
    """
    from lifelong.data.pool import Pool

    layout = RunLayout(cfg.run_dir)
    known = [e.name for e in known_entries(cfg)]
    user = [e.name for e in cfg.stream.datasets]
    if name not in user:
        raise ArrivalError(f"run {cfg.run_dir} has no dataset {name!r} to drop"
                           + (" (it is one of the built-in stream's)" if name in known else
                              f" (its datasets: {', '.join(known) or 'none'})"))
    t = known.index(name) + 1
    if layout.marker(t, "train").exists():
        raise ArrivalError(f"dataset {name!r} trained in round {t} of run {cfg.run_dir}; a trained round cannot "
                           "be dropped (start a new run without it)")
    if name in setup_datasets(layout):
        raise ArrivalError(f"dataset {name!r} was part of run {cfg.run_dir} from the start (setup evaluated it); "
                           f"fix its entry in the config and resume with 'lifelong run CONFIG --force'")
    later = [r for r in range(t + 1, len(known) + 1) if layout.stage_dir(r, "ingest").parent.exists()]
    if later:
        raise ArrivalError(f"round {later[0]} of run {cfg.run_dir} has started after {name!r}; it cannot be dropped")
    with Pool(layout.pool) as pool:
        removed = pool.drop_dataset(name)
    for report in (layout.pool / "quarantine").glob(f"{name}.*.jsonl"):
        report.unlink()
    shutil.rmtree(layout.rounds / str(t), ignore_errors=True)
    claimed = layout.arrivals / name
    if claimed.is_dir():
        dest = Inbox(layout.inbox).quarantine(claimed, f"dropped from run {cfg.run_dir} with lifelong round --drop")
        log(f"its folder is now {dest}")
    cfg.stream.datasets = [e for e in cfg.stream.datasets if e.name != name]
    save_run_config(cfg)
    if layout.arrivals.is_dir():
        with open(layout.arrivals / "events.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": "dropped",
                                "dataset": name, "samples_removed": removed}) + "\n")
    log(f"dropped dataset {name!r} (round {t}) from run {cfg.run_dir}: {removed} samples left the pool")


def known_entries(cfg: RunConfig) -> list[DatasetEntry]:
    """The datasets a run already has: the built-in stream's (once prepared) and the user's."""
    out = list(cfg.stream.datasets)
    layout = RunLayout(cfg.run_dir)
    if cfg.stream.builtin != "none" and layout.stream_manifest.exists():
        from lifelong.data.stream import read_manifest

        out += [DatasetEntry(i.name, "") for i in read_manifest(layout.data)]
    return out


def append_entry(cfg: RunConfig, entry: DatasetEntry) -> None:
    """Add ``entry`` to the end of the run's stream and save ``config.yaml`` atomically."""
    cfg.stream.datasets.append(entry)
    save_run_config(cfg)


# ---- the inbox ------------------------------------------------------------------
class Inbox:
    """Folders dropped into ``root``, in the order they became complete."""

    def __init__(self, root: Path, stable_after: float | None = None):
        self.root = Path(root)
        self.stable_after = stable_after
        self._seen: dict[str, tuple[tuple, float]] = {}  # folder -> (snapshot, first seen unchanged at)

    def _snapshot(self, folder: Path) -> tuple:
        out = []
        for p in sorted(folder.rglob("*")):
            try:
                st = p.stat()
            except OSError:
                continue
            out.append((str(p.relative_to(folder)), st.st_size, st.st_mtime_ns))
        return tuple(out)

    def ready(self) -> list[Path]:
        """Complete folders, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        now = time.monotonic()
        for folder in self.root.iterdir():
            if not folder.is_dir() or folder.name.startswith(".") or folder.name == QUARANTINE:
                continue
            marker = folder / READY
            if marker.exists():
                found.append((marker.stat().st_mtime_ns, folder.name, folder))
            elif self.stable_after is not None:
                snap = self._snapshot(folder)
                old = self._seen.get(folder.name)
                if old is None or old[0] != snap:
                    self._seen[folder.name] = (snap, now)
                elif snap and now - old[1] >= self.stable_after:
                    found.append((max(s[2] for s in snap), folder.name, folder))
        return [f for _, _, f in sorted(found)]

    def quarantine(self, folder: Path, reason: str) -> Path:
        """Move ``folder`` to ``quarantine/`` (a free name) with a ``REASON.txt``."""
        qdir = self.root / QUARANTINE
        qdir.mkdir(parents=True, exist_ok=True)
        dest, k = qdir / folder.name, 1
        while dest.exists():
            dest, k = qdir / f"{folder.name}.{k}", k + 1
        os.rename(folder, dest)
        (dest / "REASON.txt").write_text(reason + "\n")
        self._seen.pop(folder.name, None)
        return dest


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
    from lifelong.run_config import check_run_config
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
