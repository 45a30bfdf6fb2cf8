"""The pool: a SQLite manifest of samples plus a content-addressed image store.

Layout under the pool root::

    pool.sqlite        manifest (WAL): samples, their images, ingests, prune ledger
    blobs/ab/abcdef…   image files named by the sha256 of their bytes
    quarantine/        one JSONL report per ingest of bad records

The pool owns its content: images are copied in, so the source folder can go
away. Every change of the manifest is one SQLite transaction; blobs are written
(atomically, by rename) before the rows that name them, so a killed writer
leaves at worst unreferenced blobs, never a row without its image.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lifelong.data.sample import Sample

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    content_key TEXT NOT NULL UNIQUE,
    dataset TEXT NOT NULL,
    task TEXT NOT NULL,
    split TEXT NOT NULL,
    images TEXT NOT NULL,
    conversation TEXT,
    provenance TEXT NOT NULL,
    round_added INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    ingest_id INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_status ON samples(status, split, dataset);
-- The evaluation reads one task's held-out split, in any status, in rowid order.
CREATE INDEX IF NOT EXISTS samples_split_task ON samples(split, task);
CREATE TABLE IF NOT EXISTS sample_images (
    sample_rowid INTEGER NOT NULL REFERENCES samples(rowid),
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sample_images_hash ON sample_images(hash);
CREATE INDEX IF NOT EXISTS sample_images_row ON sample_images(sample_rowid);
CREATE TABLE IF NOT EXISTS ingests (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    format TEXT NOT NULL,
    dataset TEXT NOT NULL,
    split TEXT NOT NULL,
    round INTEGER NOT NULL,
    added INTEGER NOT NULL,
    unchanged INTEGER NOT NULL,
    quarantined INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    sample_id TEXT NOT NULL,
    content_key TEXT NOT NULL,
    round INTEGER NOT NULL,
    cluster INTEGER,
    max_sim REAL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value
);
"""
# Bytes of content deleted since the last VACUUM: SQLite leaves them as slack
# inside pages (a pruned row shrinks in place), which only a VACUUM gives back.
SLACK_KEY = "slack_bytes"
# WAL file kept after a checkpoint, bytes (a large ingest or a VACUUM would
# otherwise leave a WAL as big as what it wrote).
WAL_LIMIT = 64 * 2**20


@dataclass
class PruneRecord:
    """One permanent removal, as the ledger keeps it."""

    sample_id: str
    round: int
    reason: str
    cluster: int | None = None
    max_sim: float | None = None


class PoolError(RuntimeError):
    pass


class Pool:
    """Manifest + blob store at ``root``. Safe to open from several processes (WAL)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.blob_dir = self.root / "blobs"
        self.blob_dir.mkdir(exist_ok=True)
        self._blob_subdirs: set[str] = set()
        self.db = sqlite3.connect(self.root / "pool.sqlite", isolation_level=None, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- transactions -------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All writes inside commit together or not at all."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    # ---- blobs ----------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blob_dir / digest[:2] / digest

    def put_blob(self, data: bytes, digest: str | None = None) -> str:
        """Store ``data`` under its sha256 (atomic rename); returns the hex digest."""
        digest = digest or hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if path.exists():
            return digest
        if path.parent.name not in self._blob_subdirs:
            path.parent.mkdir(exist_ok=True)
            self._blob_subdirs.add(path.parent.name)
        # A per-writer temporary name: concurrent writers of the same content
        # each rename a complete file into place.
        tmp = path.parent / f".tmp-{digest}-{os.getpid()}-{threading.get_ident()}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def load_image(self, digest: str):
        """The stored image as an RGB ``PIL.Image``."""
        from PIL import Image

        with Image.open(io.BytesIO(self.read_blob(digest))) as im:
            return im.convert("RGB")

    # ---- samples --------------------------------------------------------
    def lookup(self, sample_id: str) -> tuple[str, str] | None:
        """(content_key, status) of an id, or None when the pool never had it."""
        row = self.db.execute("SELECT content_key, status FROM samples WHERE id=?", (sample_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def has_content(self, content_key: str) -> bool:
        return self.db.execute("SELECT 1 FROM samples WHERE content_key=?", (content_key,)).fetchone() is not None

    def insert(self, sample: Sample, content_key: str, round_added: int, ingest_id: int) -> bool:
        """Insert one sample inside an open transaction; False if its content is already known."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO samples (id, content_key, dataset, task, split, images, conversation,"
            " provenance, round_added, status, ingest_id) VALUES (?,?,?,?,?,?,?,?,?, 'active', ?)",
            (
                sample.id,
                content_key,
                sample.dataset,
                sample.task,
                sample.split,
                json.dumps(sample.images),
                json.dumps(sample.conversation, ensure_ascii=False),
                json.dumps(sample.provenance, ensure_ascii=False, sort_keys=True),
                round_added,
                ingest_id,
            ),
        )
        if cur.rowcount == 0:
            return False
        rowid = cur.lastrowid
        self.db.executemany(
            "INSERT INTO sample_images (sample_rowid, hash) VALUES (?, ?)", [(rowid, h) for h in sample.images]
        )
        return True

    def _where(self, status, split, dataset, task, ids=None) -> tuple[str, list]:
        clauses, params = [], []
        for col, val in (("status", status), ("split", split), ("dataset", dataset), ("task", task)):
            if val is not None:
                clauses.append(f"{col}=?")
                params.append(val)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def samples(
        self,
        status: str | None = "active",
        split: str | None = "train",
        dataset: str | None = None,
        task: str | None = None,
    ) -> list[Sample]:
        """Samples matching the filters, in insertion order (stable across runs)."""
        where, params = self._where(status, split, dataset, task)
        rows = self.db.execute(
            "SELECT id, dataset, task, split, conversation, images, provenance FROM samples"
            f"{where} ORDER BY rowid",
            params,
        )
        return [self._row_to_sample(r) for r in rows]

    def view(self, ids: list[str]) -> "SampleView":
        """A lazy sequence of the active samples ``ids``: a slice fetches only its rows (see :class:`SampleView`)."""
        return SampleView(self, ids)

    def get(self, ids: Iterable[str], status: str | None = "active") -> list[Sample]:
        """Samples by id, in the order given; unknown ids (or, by default, pruned ones) raise."""
        ids = list(ids)
        out = {}
        cond = "status=? AND " if status is not None else ""
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            q = ",".join("?" * len(chunk))
            for r in self.db.execute(
                "SELECT id, dataset, task, split, conversation, images, provenance FROM samples"
                f" WHERE {cond}id IN ({q})",
                ([status] if status is not None else []) + chunk,
            ):
                out[r[0]] = self._row_to_sample(r)
        missing = [i for i in ids if i not in out]
        if missing:
            raise PoolError(f"{len(missing)} ids are not {status or 'in the pool'}, e.g. {missing[0]!r}")
        return [out[i] for i in ids]

    @staticmethod
    def _row_to_sample(r) -> Sample:
        return Sample(
            id=r[0],
            dataset=r[1],
            task=r[2],
            split=r[3],
            conversation=json.loads(r[4]),
            images=json.loads(r[5]),
            provenance=json.loads(r[6]),
        )

    def ids(self, status: str | None = "active", split: str | None = "train", dataset: str | None = None,
            task: str | None = None) -> list[str]:
        """Ids matching the filters, in insertion order."""
        where, params = self._where(status, split, dataset, task)
        return [r[0] for r in self.db.execute(f"SELECT id FROM samples{where} ORDER BY rowid", params)]

    def count(self, status: str | None = "active", split: str | None = "train", dataset: str | None = None) -> int:
        where, params = self._where(status, split, dataset, None)
        return self.db.execute(f"SELECT COUNT(*) FROM samples{where}", params).fetchone()[0]

    def datasets(self, split: str | None = None) -> list[str]:
        """Datasets in the order they first arrived."""
        where, params = self._where(None, split, None, None)
        rows = self.db.execute(f"SELECT dataset, MIN(rowid) m FROM samples{where} GROUP BY dataset ORDER BY m", params)
        return [r[0] for r in rows]

    # ---- pruning ---------------------------------------------------------
    def prune(self, records: list[PruneRecord]) -> int:
        """Permanently remove active samples: ledger rows, content deleted, blobs freed.

        One transaction; afterwards every blob no longer referenced by any
        sample is deleted from disk. Returns the number removed.
        """
        freed: set[str] = set()
        slack = 0
        with self.transaction() as db:
            for rec in records:
                row = db.execute(
                    "SELECT rowid, content_key, status, LENGTH(conversation) FROM samples WHERE id=?",
                    (rec.sample_id,),
                ).fetchone()
                if row is None or row[2] != "active":
                    raise PoolError(f"cannot prune {rec.sample_id!r}: not an active sample")
                rowid, key, _, size = row
                slack += size or 0
                db.execute(
                    "INSERT INTO ledger (sample_id, content_key, round, cluster, max_sim, reason) VALUES (?,?,?,?,?,?)",
                    (rec.sample_id, key, rec.round, rec.cluster, rec.max_sim, rec.reason),
                )
                hashes = [h for (h,) in db.execute("SELECT hash FROM sample_images WHERE sample_rowid=?", (rowid,))]
                db.execute("DELETE FROM sample_images WHERE sample_rowid=?", (rowid,))
                db.execute("UPDATE samples SET status='pruned', conversation=NULL WHERE rowid=?", (rowid,))
                freed.update(hashes)
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = value + ?",
                (SLACK_KEY, slack, slack),
            )
        for h in freed:
            if self.db.execute("SELECT 1 FROM sample_images WHERE hash=? LIMIT 1", (h,)).fetchone() is None:
                self.blob_path(h).unlink(missing_ok=True)
        return len(records)

    def file_bytes(self) -> int:
        """Size of the manifest on disk: the database file plus its WAL."""
        return sum(p.stat().st_size for p in (self.root / "pool.sqlite", self.root / "pool.sqlite-wal") if p.exists())

    def reclaimable_bytes(self) -> int:
        """What a VACUUM would give back, about: free pages plus content deleted since the last one."""
        page = self.db.execute("PRAGMA page_size").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (SLACK_KEY,)).fetchone()
        return free * page + int(row[0] if row else 0)

    def compact(self, min_fraction: float = 0.25) -> bool:
        """VACUUM the manifest when at least ``min_fraction`` of its file would be given back.

        A VACUUM rewrites the whole file (time linear in its size), so it runs
        only when worthwhile; afterwards the WAL is checkpointed and truncated.
        Needs no other connection inside a transaction. Returns whether it ran.
        """
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = self.file_bytes()
        if size == 0 or self.reclaimable_bytes() < min_fraction * size:
            return False
        self.db.execute("VACUUM")
        self.db.execute("DELETE FROM meta WHERE key=?", (SLACK_KEY,))
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return True

    def ledger(self) -> list[dict]:
        cols = ("sample_id", "content_key", "round", "cluster", "max_sim", "reason")
        return [dict(zip(cols, r)) for r in self.db.execute(f"SELECT {', '.join(cols)} FROM ledger ORDER BY rowid")]

    # ---- summaries ----------------------------------------------------------
    def stats(self) -> list[dict]:
        """Counts per (dataset, task, split, status)."""
        rows = self.db.execute(
            "SELECT dataset, task, split, status, COUNT(*) FROM samples GROUP BY dataset, task, split, status"
            " ORDER BY MIN(rowid), split, status"
        )
        return [dict(dataset=r[0], task=r[1], split=r[2], status=r[3], count=r[4]) for r in rows]

    def n_blobs(self) -> int:
        return sum(1 for p in self.blob_dir.glob("*/*") if not p.name.startswith(".tmp-"))

    def check(self) -> list[str]:
        """Consistency problems (empty list when the pool is sound)."""
        problems = []
        for (h,) in self.db.execute("SELECT DISTINCT hash FROM sample_images"):
            if not self.blob_path(h).exists():
                problems.append(f"blob {h} referenced but missing")
        n = self.db.execute("SELECT COUNT(*) FROM samples WHERE status='active' AND conversation IS NULL").fetchone()[0]
        if n:
            problems.append(f"{n} active samples without content")
        return problems

    def new_ingest(self, source: str, fmt: str, dataset: str, split: str, round_: int) -> int:
        cur = self.db.execute(
            "INSERT INTO ingests (source, format, dataset, split, round, added, unchanged, quarantined)"
            " VALUES (?,?,?,?,?,0,0,0)",
            (source, fmt, dataset, split, round_),
        )
        return cur.lastrowid

    def finish_ingest(self, ingest_id: int, added: int, unchanged: int, quarantined: int) -> None:
        self.db.execute(
            "UPDATE ingests SET added=?, unchanged=?, quarantined=? WHERE id=?",
            (added, unchanged, quarantined, ingest_id),
        )


class SampleView(Sequence):
    """The active samples ``ids`` of a pool, fetched on demand.

    Holds only the ids: ``view[a:b]`` reads those rows from the manifest
    (one query per 900 ids) and returns them as a list, ``view[i]`` one
    sample. The scoring pass slices one shard at a time, so the pool never
    sits in memory as ``Sample`` objects.
    """

    def __init__(self, pool: Pool, ids: list[str]):
        self.pool = pool
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.pool.get(self.ids[i])
        return self.pool.get([self.ids[i]])[0]
