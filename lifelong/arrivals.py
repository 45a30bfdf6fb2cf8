"""Datasets that arrive in a live run: ``lifelong round`` and the ``lifelong watch`` task-stream manager.

An arriving dataset is a folder (or, for ``round``, also a single file):

    <name>/dataset.yaml      optional: name, train, test, metric, format (paths relative to the folder)
    <name>/train.json|.jsonl|.parquet, test.json|...   LLaVA JSON, messages JSONL/Parquet
    <name>/                  or a save_to_disk dataset (a DatasetDict's "train"/"test" splits)

Without ``dataset.yaml`` the folder's name names the dataset, its ``train``
file (or ``train/`` folder) is the training split and its ``test`` file (or
folder) the held-out split; a folder without a ``train`` part is all training
data.

The watcher of an inbox (``lifelong watch``) lives in :mod:`lifelong.watch`; it claims folders
through :func:`resolve`, :func:`check` and :func:`append_entry` here.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from lifelong.config import ConfigError, from_dict, load_yaml
from lifelong.layout import RunLayout
from lifelong.run_config import DatasetEntry, RunConfig, save_run_config
from lifelong.run_checks import entry_problems, hf_splits, setup_datasets

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
