"""Permanent removal from the pool, in two steps, and giving the space back.

1. :func:`prune` (the prune stage): a ledger row per sample (id, content
   hash, round, cluster, max-sim, reason), its conversation and image links
   deleted, unreferenced image files removed. The row stays, status
   ``pruned``, with its dataset, task and provenance: the round's data card
   counts the pruned samples by them.
2. :func:`purge` (once that card is written): the pruned rows leave
   ``samples`` altogether; the ledger alone remembers the id and content,
   so the sample can never be ingested again.

Each step is one SQLite transaction: a process killed in the middle leaves
the manifest as it was before the step. :func:`compact` then VACUUMs when
enough of the file is dead space (itself atomic in SQLite).
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from lifelong.data.blobs import BlobStore
from lifelong.data.manifest import SLACK_KEY, PoolError, add_slack, transaction

LEDGER_COLUMNS = ("sample_id", "content_key", "round", "cluster", "max_sim", "reason", "duplicate_of")
# Added to the ledger after its first schema (manifest.py): the kept sample a pruned one
# duplicates. Pools made before get the column on open, NULL for their earlier rows.
LATER_COLUMNS = ("duplicate_of",)
# Pruned samples whose rows the purge removed, counted by where they came from (the
# ledger row alone does not say), so ``pool stats`` counts every round's pruning.
PURGED_SCHEMA = """
CREATE TABLE IF NOT EXISTS purged (
    dataset TEXT NOT NULL,
    task TEXT NOT NULL,
    split TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (dataset, task, split)
);
"""
# Bytes a ``samples`` row costs beyond its text columns (rowid, integers, record
# header) and what its index entries cost: counted as slack when it is purged.
ROW_OVERHEAD = 24


@dataclass
class PruneRecord:
    """One permanent removal, as the ledger keeps it."""

    sample_id: str
    round: int
    reason: str
    cluster: int | None = None
    max_sim: float | None = None
    duplicate_of: str | None = None  # the kept sample it was most similar to, when pruned as a duplicate


def upgrade(db: sqlite3.Connection) -> None:
    """Add :data:`LATER_COLUMNS` and the ``purged`` counts to a pool made before them (idempotent,
    safe to race)."""
    db.executescript(PURGED_SCHEMA)
    have = {r[1] for r in db.execute("PRAGMA table_info(ledger)")}
    for col in LATER_COLUMNS:
        if col not in have:
            try:
                db.execute(f"ALTER TABLE ledger ADD COLUMN {col} TEXT")
            except sqlite3.OperationalError as e:  # another process added it first
                if "duplicate column" not in str(e):
                    raise


def prune(db: sqlite3.Connection, blobs: BlobStore, records: list[PruneRecord]) -> int:
    """Permanently remove active samples: ledger rows, content deleted, blobs freed.

    One transaction; afterwards every blob no longer referenced by any
    sample is deleted from disk. Returns the number removed.
    """
    freed: set[str] = set()
    slack = 0
    with transaction(db):
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
                "INSERT INTO ledger (sample_id, content_key, round, cluster, max_sim, reason, duplicate_of)"
                " VALUES (?,?,?,?,?,?,?)",
                (rec.sample_id, key, rec.round, rec.cluster, rec.max_sim, rec.reason, rec.duplicate_of),
            )
            hashes = [h for (h,) in db.execute("SELECT hash FROM sample_images WHERE sample_rowid=?", (rowid,))]
            db.execute("DELETE FROM sample_images WHERE sample_rowid=?", (rowid,))
            db.execute("UPDATE samples SET status='pruned', conversation=NULL WHERE rowid=?", (rowid,))
            freed.update(hashes)
        add_slack(db, slack)
    for h in freed:
        if db.execute("SELECT 1 FROM sample_images WHERE hash=? LIMIT 1", (h,)).fetchone() is None:
            blobs.path(h).unlink(missing_ok=True)
    return len(records)


def purge(db: sqlite3.Connection, before_round: int) -> int:
    """Delete the ``samples`` rows of samples pruned in rounds < ``before_round``; returns how many.

    Call it once nothing reads their dataset, task and provenance any more
    (the data cards of those rounds are written). One transaction; the
    ledger rows stay. Idempotent.
    """
    with transaction(db):
        rows = db.execute(
            "SELECT s.rowid, LENGTH(s.id) + LENGTH(s.content_key) + LENGTH(s.dataset) + LENGTH(s.task)"
            " + LENGTH(s.split) + LENGTH(s.images) + LENGTH(s.provenance) FROM samples s"
            " JOIN ledger l ON l.sample_id = s.id WHERE s.status='pruned' AND l.round < ?",
            (before_round,),
        ).fetchall()
        db.execute(
            "INSERT INTO purged (dataset, task, split, count) SELECT s.dataset, s.task, s.split, COUNT(*)"
            " FROM samples s JOIN ledger l ON l.sample_id = s.id WHERE s.status='pruned' AND l.round < ?"
            " GROUP BY s.dataset, s.task, s.split"
            " ON CONFLICT(dataset, task, split) DO UPDATE SET count = count + excluded.count",
            (before_round,),
        )
        for start in range(0, len(rows), 900):
            chunk = [r for r, _ in rows[start : start + 900]]
            db.execute(f"DELETE FROM samples WHERE rowid IN ({','.join('?' * len(chunk))})", chunk)
        add_slack(db, sum(n + ROW_OVERHEAD for _, n in rows))
    return len(rows)


def drop_dataset(db: sqlite3.Connection, blobs: BlobStore, dataset: str) -> int:
    """Delete every sample of ``dataset`` (any split) and its ingest records, for an arrival taken back
    before it trained; images no other sample uses are deleted. One transaction; returns the count."""
    with transaction(db):
        rows = [r for (r,) in db.execute("SELECT rowid FROM samples WHERE dataset=?", (dataset,))]
        hashes: set[str] = set()
        for start in range(0, len(rows), 900):
            chunk = rows[start : start + 900]
            q = ",".join("?" * len(chunk))
            hashes.update(h for (h,) in db.execute(f"SELECT hash FROM sample_images WHERE sample_rowid IN ({q})",
                                                   chunk))
            db.execute(f"DELETE FROM sample_images WHERE sample_rowid IN ({q})", chunk)
            db.execute(f"DELETE FROM samples WHERE rowid IN ({q})", chunk)
        db.execute("DELETE FROM ingests WHERE dataset=?", (dataset,))
    for h in hashes:
        if db.execute("SELECT 1 FROM sample_images WHERE hash=? LIMIT 1", (h,)).fetchone() is None:
            blobs.path(h).unlink(missing_ok=True)
    return len(rows)


def purged_counts(db: sqlite3.Connection) -> list[tuple]:
    """(dataset, task, split, count) of pruned samples whose rows the purge removed. Those purged by a
    pool from before the counts were kept are counted under dataset and task ``?``."""
    rows = db.execute("SELECT dataset, task, split, count FROM purged ORDER BY rowid").fetchall()
    gone = db.execute("SELECT COUNT(*) FROM ledger l WHERE NOT EXISTS"
                      " (SELECT 1 FROM samples s WHERE s.id = l.sample_id)").fetchone()[0]
    unknown = gone - sum(r[3] for r in rows)
    return rows + ([("?", "?", "train", unknown)] if unknown > 0 else [])


def pruned_key(db: sqlite3.Connection, sample_id: str) -> str | None:
    """Content key of a pruned sample by id (from the ledger), or None when the id was never pruned."""
    row = db.execute("SELECT content_key FROM ledger WHERE sample_id=? LIMIT 1", (sample_id,)).fetchone()
    return row[0] if row else None


def was_pruned(db: sqlite3.Connection, content_key: str) -> bool:
    return db.execute("SELECT 1 FROM ledger WHERE content_key=? LIMIT 1", (content_key,)).fetchone() is not None


def ledger_rows(db: sqlite3.Connection) -> list[dict]:
    return [dict(zip(LEDGER_COLUMNS, r))
            for r in db.execute(f"SELECT {', '.join(LEDGER_COLUMNS)} FROM ledger ORDER BY rowid")]


# ---- giving the space back -------------------------------------------------------


def file_bytes(path: Path) -> int:
    """Size of the manifest ``path`` on disk: the database file plus its WAL."""
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def reclaimable_bytes(db: sqlite3.Connection) -> int:
    """What a VACUUM would give back, about: free pages plus content deleted since the last one."""
    page = db.execute("PRAGMA page_size").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0]
    row = db.execute("SELECT value FROM meta WHERE key=?", (SLACK_KEY,)).fetchone()
    return free * page + int(row[0] if row else 0)


def compact(db: sqlite3.Connection, path: Path, min_fraction: float = 0.25) -> bool:
    """VACUUM the manifest when at least ``min_fraction`` of its file would be given back.

    A VACUUM rewrites the whole file (time linear in its size), so it runs
    only when worthwhile; afterwards the WAL is checkpointed and truncated.
    Needs no other connection inside a transaction. Returns whether it ran.
    """
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = file_bytes(path)
    if size == 0 or reclaimable_bytes(db) < min_fraction * size:
        return False
    db.execute("VACUUM")
    db.execute("DELETE FROM meta WHERE key=?", (SLACK_KEY,))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return True
