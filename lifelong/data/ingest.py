"""Ingestion: read a dataset, validate every record, copy the good ones into the pool.

Bad records never stop an ingest: each goes to the quarantine report with the
reason, and the rest ingest. All rows of one ingest commit in one transaction,
so a killed ingest leaves the pool exactly as it was, and a re-run is
idempotent: content already in the pool is counted as unchanged.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lifelong.data.pool import Pool
from lifelong.data.readers import detect_format, read_records
from lifelong.data.records import BadRecord, ImageStore, IngestConfig, to_sample

__all__ = ["IngestConfig", "IngestReport", "SPLIT_NAMES", "check_records", "detect_format_safe", "ingest",
           "iter_dataset_files", "record_place", "write_quarantine"]

# File stems (and DatasetDict keys) that name a split.
SPLIT_NAMES = ("train", "val", "validation", "test")


@dataclass
class IngestReport:
    dataset: str
    split: str
    source: str
    format: str
    added: int = 0
    unchanged: int = 0
    quarantined: list[dict] = field(default_factory=list)
    quarantine_path: Path | None = None

    @property
    def total(self) -> int:
        return self.added + self.unchanged + len(self.quarantined)

    def summary(self) -> str:
        return (
            f"{self.dataset}/{self.split}: {self.added} added, {self.unchanged} already in pool, "
            f"{len(self.quarantined)} quarantined" + (f" (see {self.quarantine_path})" if self.quarantined else "")
        )


def record_place(q: dict) -> str:
    """Where a quarantined record is, as a user finds it: ``line 3`` (1-based, in a JSON/JSONL file),
    else ``record 3`` (1-based position, in Parquet or a saved dataset)."""
    return f"line {q['line']}" if q.get("line") else f"record {q['index'] + 1}"


def ingest(
    pool: Pool,
    source: str | Path,
    dataset: str | None = None,
    split: str | None = None,
    fmt: str | None = None,
    round_added: int = 0,
    image_root: str | Path | None = None,
    cfg: IngestConfig | None = None,
) -> IngestReport:
    """Ingest one dataset file/dir into ``pool`` and write its quarantine report.

    ``dataset`` defaults to the parent folder name (LLaVA ``<name>/train.json``)
    or the file stem; ``split`` defaults to ``train`` unless the file stem
    names one (``test``, ``val``, ``validation``). Images resolve against
    ``image_root`` (default: the file's folder) and may not escape it.
    """
    cfg = cfg or IngestConfig()
    source, dataset, split, fmt, root = _source(source, dataset, split, fmt, image_root)
    report = IngestReport(dataset, split, str(source), fmt)
    ingest_id = pool.new_ingest(str(source), fmt, dataset, split, round_added)
    seen_ids: dict[str, int] = {}
    records = read_records(source, fmt, split)
    if cfg.progress:
        from tqdm import tqdm

        records = tqdm(records, desc=f"ingest {dataset}/{split}", unit="rec", mininterval=1.0, leave=False)
    writes = BlobWriter(pool, cfg.io_threads)
    images = ImageStore(root, writes, cfg)
    with pool.transaction():
        for raw in records:
            try:
                sample = to_sample(raw, fmt, dataset, split, images, cfg, seen_ids)
                key = sample.content_key()
                known = pool.lookup(sample.id)
                if known is not None and known[0] != key:
                    raise BadRecord(f"id {sample.id!r} is already in the pool with different content")
                if pool.insert(sample, key, round_added, ingest_id):
                    report.added += 1
                else:
                    report.unchanged += 1
            except BadRecord as e:
                rid = raw.data.get("id") if isinstance(raw.data, dict) else None
                report.quarantined.append(
                    {"index": raw.index, "line": raw.line, "id": rid if isinstance(rid, (str, int)) else None,
                     "reason": str(e)}
                )
        writes.wait()  # every blob is on disk before the rows naming it commit
        pool.finish_ingest(ingest_id, report.added, report.unchanged, len(report.quarantined))
    report.quarantine_path = write_quarantine(pool, report)
    return report


def _source(source, dataset, split, fmt, image_root) -> tuple[Path, str, str, str, Path]:
    """(source, dataset, split, format, image root) with :func:`ingest`'s defaults filled in."""
    source = Path(source)
    fmt = fmt or detect_format(source)
    stem = source.stem.lower()
    split = split or (stem if stem in SPLIT_NAMES else "train")
    if dataset is None:
        dataset = source.parent.name if stem in SPLIT_NAMES else source.stem
    root = Path(image_root) if image_root is not None else (source if source.is_dir() else source.parent)
    return source, dataset, split, fmt, root


def check_records(source: str | Path, dataset: str | None = None, split: str | None = None, fmt: str | None = None,
                  image_root: str | Path | None = None, cfg: IngestConfig | None = None) -> IngestReport:
    """A dry run of :func:`ingest`: every record validated, nothing stored.

    The report's ``added`` counts the records that would enter an empty pool,
    ``quarantined`` the bad ones with their reasons.
    """
    cfg = cfg or IngestConfig()
    source, dataset, split, fmt, root = _source(source, dataset, split, fmt, image_root)
    report = IngestReport(dataset, split, str(source), fmt)
    images = ImageStore(root, _DiscardWrites(), cfg)
    seen_ids: dict[str, int] = {}
    for raw in read_records(source, fmt, split):
        try:
            to_sample(raw, fmt, dataset, split, images, cfg, seen_ids)
            report.added += 1
        except BadRecord as e:
            report.quarantined.append({"index": raw.index, "line": raw.line, "id": None, "reason": str(e)})
    return report


class _DiscardWrites:
    """Blob writer of a dry run: validated images are not stored."""

    def put(self, data: bytes, digest: str) -> None:
        pass


class BlobWriter:
    """Writes blobs on a few threads; ``wait()`` returns once all are stored."""

    def __init__(self, pool: Pool, threads: int, max_pending: int = 256):
        from concurrent.futures import ThreadPoolExecutor

        self.pool = pool
        self.executor = ThreadPoolExecutor(max_workers=max(1, threads))
        self.pending: list = []
        self.max_pending = max_pending

    def put(self, data: bytes, digest: str) -> None:
        self.pending.append(self.executor.submit(self.pool.put_blob, data, digest))
        if len(self.pending) >= self.max_pending:  # bounds memory held by queued images
            self._drain(self.max_pending // 2)

    def _drain(self, keep: int) -> None:
        while len(self.pending) > keep:
            self.pending.pop(0).result()

    def wait(self) -> None:
        self._drain(0)
        self.executor.shutdown()


def write_quarantine(pool: Pool, report: IngestReport) -> Path:
    """``quarantine/<dataset>.<split>.jsonl``: one line per bad record of the latest ingest."""
    qdir = pool.root / "quarantine"
    qdir.mkdir(exist_ok=True)
    path = qdir / f"{report.dataset}.{report.split}.jsonl"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for q in report.quarantined:
            f.write(json.dumps({"source": report.source, **q}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def iter_dataset_files(path: Path, split: str | None = None) -> Iterator[Path]:
    """A LLaVA dataset folder ``<name>/{train,test}.json`` yields each split file (only ``split``'s if given).

    A file or a ``save_to_disk`` folder is yielded as it is (a saved
    ``DatasetDict`` holds its splits inside).
    """
    path = Path(path)
    if path.is_dir() and detect_format_safe(path) != "hf":
        for name in SPLIT_NAMES if split is None else (split,):
            for ext in (".json", ".jsonl", ".parquet"):
                if (path / f"{name}{ext}").exists():
                    yield path / f"{name}{ext}"
    else:
        yield path


def detect_format_safe(path: Path) -> str | None:
    try:
        return detect_format(path)
    except Exception:
        return None
