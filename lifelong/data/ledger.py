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

LEDGER_COLUMNS = ("sample_id", "content_key", "round", "cluster", "max_sim", "reason")
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
                "INSERT INTO ledger (sample_id, content_key, round, cluster, max_sim, reason) VALUES (?,?,?,?,?,?)",
                (rec.sample_id, key, rec.round, rec.cluster, rec.max_sim, rec.reason),
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
        for start in range(0, len(rows), 900):
            chunk = [r for r, _ in rows[start : start + 900]]
            db.execute(f"DELETE FROM samples WHERE rowid IN ({','.join('?' * len(chunk))})", chunk)
        add_slack(db, sum(n + ROW_OVERHEAD for _, n in rows))
    return len(rows)


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
