"""The pool: a SQLite manifest of samples plus a content-addressed image store.

Layout under the pool root::

    pool.sqlite        manifest (WAL): samples, their images, ingests, prune ledger (manifest.py)
    blobs/ab/abcdef…   image files named by the sha256 of their bytes (blobs.py)
    quarantine/        one JSONL report per ingest of bad records

The pool owns its content: images are copied in, so the source folder can go
away. Every change of the manifest is one SQLite transaction; blobs are written
(atomically, by rename) before the rows that name them, so a killed writer
leaves at worst unreferenced blobs, never a row without its image. Removal
(prune, purge) and compaction live in ledger.py.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from lifelong.data import ledger
from lifelong.data.blobs import BlobStore
from lifelong.data.ledger import PruneRecord
from lifelong.data.manifest import PoolError, connect, transaction
from lifelong.data.sample import Sample

__all__ = ["Pool", "PoolError", "PruneRecord", "SampleView"]


class SampleLabel(NamedTuple):
    """What reports need of a sample without its content: id, dataset, task, provenance."""

    id: str
    dataset: str
    task: str
    provenance: dict


class Pool:
    """Manifest + blob store at ``root``. Safe to open from several processes (WAL).

    ``create=False`` opens an existing pool only (:class:`PoolError` when there
    is none): readers such as ``lifelong pool stats`` never make one.
    """

    def __init__(self, root: str | Path, create: bool = True):
        self.root = Path(root)
        self.path = self.root / "pool.sqlite"
        if not create and not self.path.is_file():
            raise PoolError(f"no pool at {self.root} (no pool.sqlite)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.blobs = BlobStore(self.root / "blobs")
        self.blob_dir = self.blobs.root
        self.db = connect(self.path)
        ledger.upgrade(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All writes inside commit together or not at all."""
        return transaction(self.db)

    # ---- blobs (blobs.py) ---------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blobs.path(digest)

    def put_blob(self, data: bytes, digest: str | None = None) -> str:
        return self.blobs.put(data, digest)

    def read_blob(self, digest: str) -> bytes:
        return self.blobs.read(digest)

    def load_image(self, digest: str):
        """The stored image as an RGB ``PIL.Image``."""
        return self.blobs.load_image(digest)

    def n_blobs(self) -> int:
        return self.blobs.count()

    # ---- samples --------------------------------------------------------
    def lookup(self, sample_id: str) -> tuple[str, str] | None:
        """(content_key, status) of an id, or None when the pool never had it (a purged row: the ledger's)."""
        row = self.db.execute("SELECT content_key, status FROM samples WHERE id=?", (sample_id,)).fetchone()
        if row:
            return row[0], row[1]
        key = ledger.pruned_key(self.db, sample_id)
        return None if key is None else (key, "pruned")

    def has_content(self, content_key: str) -> bool:
        """Whether the pool has, or once had, this content (a pruned sample never comes back)."""
        row = self.db.execute("SELECT 1 FROM samples WHERE content_key=?", (content_key,)).fetchone()
        return row is not None or ledger.was_pruned(self.db, content_key)

    def insert(self, sample: Sample, content_key: str, round_added: int, ingest_id: int) -> bool:
        """Insert one sample inside an open transaction; False if its content is already known (or was pruned)."""
        if ledger.was_pruned(self.db, content_key):
            return False
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

    def labels(self, ids: Iterable[str] | None = None, status: str | None = "active",
               split: str | None = "train") -> list[SampleLabel]:
        """Id, dataset, task and provenance of the matching samples (``ids``: only these), in insertion
        order; with ``status=None`` pruned samples too, while their rows remain (their content is gone)."""
        where, params = self._where(status, split, None, None)
        rows = self.db.execute(f"SELECT id, dataset, task, provenance FROM samples{where} ORDER BY rowid", params)
        wanted = None if ids is None else set(ids)
        return [SampleLabel(r[0], r[1], r[2], json.loads(r[3])) for r in rows if wanted is None or r[0] in wanted]

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

    # ---- removal and compaction (ledger.py) -----------------------------------
    def prune(self, records: list[PruneRecord]) -> int:
        """Permanently remove active samples (see :func:`lifelong.data.ledger.prune`)."""
        return ledger.prune(self.db, self.blobs, records)

    def drop_dataset(self, dataset: str) -> int:
        """Delete every sample of ``dataset`` (see :func:`lifelong.data.ledger.drop_dataset`)."""
        return ledger.drop_dataset(self.db, self.blobs, dataset)

    def purge(self, before_round: int) -> int:
        """Drop the rows of samples pruned before ``before_round`` (see :func:`lifelong.data.ledger.purge`)."""
        return ledger.purge(self.db, before_round)

    def file_bytes(self) -> int:
        return ledger.file_bytes(self.path)

    def reclaimable_bytes(self) -> int:
        return ledger.reclaimable_bytes(self.db)

    def compact(self, min_fraction: float = 0.25) -> bool:
        """VACUUM when worthwhile (see :func:`lifelong.data.ledger.compact`); returns whether it ran."""
        return ledger.compact(self.db, self.path, min_fraction)

    def ledger(self) -> list[dict]:
        return ledger.ledger_rows(self.db)

    # ---- summaries ----------------------------------------------------------
    def stats(self) -> list[dict]:
        """Counts per (dataset, task, split, status); ``pruned`` counts every sample ever pruned,
        those whose rows the purge removed included (the ledger keeps where they came from)."""
        counts: dict[tuple, int] = {}
        for r in self.db.execute(
            "SELECT dataset, task, split, status, COUNT(*) FROM samples GROUP BY dataset, task, split, status"
            " ORDER BY MIN(rowid), split, status"
        ):
            counts[r[:4]] = r[4]
        for dataset, task, split, n in ledger.purged_counts(self.db):
            key = (dataset, task, split, "pruned")
            counts[key] = counts.get(key, 0) + n
        return [dict(dataset=k[0], task=k[1], split=k[2], status=k[3], count=n) for k, n in counts.items()]

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
