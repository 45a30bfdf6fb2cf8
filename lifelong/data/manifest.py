"""The pool's SQLite manifest: schema, connection settings, transactions.

Tables: ``samples`` (every active sample and its content, plus pruned rows
whose round's data card is not yet written), ``sample_images`` (which blob
each sample names), ``ingests``, ``ledger`` (one row per pruned sample, kept
for good: id, content hash, round, cluster, max-sim, reason) and ``meta``.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
-- Once a pruned row has left ``samples``, the ledger alone answers "was this
-- id / this content here before?" for the ingest (a pruned sample never returns).
CREATE INDEX IF NOT EXISTS ledger_id ON ledger(sample_id);
CREATE INDEX IF NOT EXISTS ledger_key ON ledger(content_key);
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


class PoolError(RuntimeError):
    pass


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the manifest at ``path`` in WAL mode, schema brought up to date."""
    db = sqlite3.connect(path, isolation_level=None, timeout=60)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
    db.executescript(SCHEMA)
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """All writes inside commit together or not at all."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    else:
        db.execute("COMMIT")


def add_slack(db: sqlite3.Connection, n_bytes: int) -> None:
    """Count ``n_bytes`` more content deleted in place (inside an open transaction)."""
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = value + ?",
        (SLACK_KEY, n_bytes, n_bytes),
    )
