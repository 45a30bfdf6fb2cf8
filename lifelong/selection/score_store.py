"""A round's scores on disk as one column store, read through memory maps.

The scoring pass writes shards (the unit of resumption and of work split
across processes, see ``score.py``). Once every shard is done, the main
process copies them, shard by shard, into one column store::

    columns/
      meta.json            {"n", "experts", "sketches", "embed_dim", "sketch_dim"}
      ids.json             the n sample ids, row order
      sketch.npy           (n, d) float16 unit rows (absent when the pass made no sketches)
      embed.npy            (n, H) float16 unit rows (pruning embeddings)
      score.<expert>.npy   (n,) float64, one file per expert

and deletes the shards. Readers open the ``.npy`` files with ``mmap_mode="r"``:
selection reads the sketch column, pruning the embedding column, each by row
range, and nothing is copied into memory as a whole. A column store is written
under ``<dir>.tmp`` and renamed into place, so it either exists complete or
not at all: a crash while it is written leaves the shards, and the copy is
redone.

Under a partial refresh (``score.refresh`` < 1) a round's store holds the
*whole* active pool: the rows scored now and the rows copied forward from the
previous round's store (:func:`gather_scores`). A round's store is therefore
self-contained, and every earlier round's store can be deleted once it exists.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lifelong.layout import RunLayout


@dataclass
class ScoreResult:
    """A scoring pass's rows. Read from a round's column store (``score_store.open_scores``) every
    array is a read-only memmap: index it by row range or column, it is never loaded whole."""

    ids: list[str]
    sketches: np.ndarray | None  # (N, d) float16, unit rows (zero rows for samples with zero gradient); None: not computed
    scores: dict[str, np.ndarray]  # expert -> (N,) float64
    # (N, H) float16 unit rows: mean-pooled last hidden state, for pruning. The
    # scoring pass runs the model over the whole pool anyway, so these come free.
    embeddings: np.ndarray


# Rows copied at a time when gathering (bounds memory: rows x (d + H) x 2 bytes).
COPY_ROWS = 65536


class ColumnWriter:
    """Fills the columns of ``n`` rows, in memory (``out_dir`` None) or as ``.npy`` files under ``out_dir``.

    A column is created on its first write (its row width and dtype are known
    then). ``finish`` flushes and, on disk, writes ``ids.json`` and
    ``meta.json`` and renames ``<out_dir>.tmp`` to ``out_dir``.
    """

    def __init__(self, n: int, out_dir: Path | None = None):
        self.n = n
        self.final = Path(out_dir) if out_dir is not None else None
        self.dir = None
        if self.final is not None:
            self.dir = self.final.with_name(self.final.name + ".tmp")
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True)
        self.cols: dict[str, np.ndarray] = {}

    def column(self, key: str, row_shape: tuple, dtype) -> np.ndarray:
        if key not in self.cols:
            shape = (self.n, *row_shape)
            if self.dir is None:
                self.cols[key] = np.zeros(shape, dtype=dtype)
            else:
                self.cols[key] = np.lib.format.open_memmap(self.dir / f"{key}.npy", mode="w+", dtype=dtype,
                                                           shape=shape)
        return self.cols[key]

    def write(self, key: str, rows, values: np.ndarray) -> None:
        """values -> column ``key`` at ``rows`` (a slice or an index array)."""
        self.column(key, values.shape[1:], values.dtype)[rows] = values

    def finish(self, ids: list[str], meta: dict):
        """-> ScoreResult over the written columns (memory-mapped when on disk)."""
        if self.dir is None:
            order = ["sketch", "embed", *(f"score.{e}" for e in meta["experts"])]
            return _result(list(ids), {k: self.cols[k] for k in order if k in self.cols})
        for col in self.cols.values():
            col.flush()
        self.cols.clear()
        (self.dir / "ids.json").write_text(json.dumps(list(ids)))
        (self.dir / "meta.json").write_text(json.dumps({"n": self.n, **meta}))
        shutil.rmtree(self.final, ignore_errors=True)
        os.replace(self.dir, self.final)
        return open_scores(self.final)


def _result(ids: list[str], cols: dict[str, np.ndarray]) -> "ScoreResult":
    return ScoreResult(ids, cols.get("sketch"), {k[6:]: v for k, v in cols.items() if k.startswith("score.")},
                       cols["embed"])


def is_complete(col_dir: Path) -> bool:
    return (Path(col_dir) / "meta.json").exists()


def open_scores(col_dir: Path):
    """The ScoreResult of a column store: ids in memory, every column a read-only memmap."""
    col_dir = Path(col_dir)
    meta = json.loads((col_dir / "meta.json").read_text())
    ids = json.loads((col_dir / "ids.json").read_text())
    cols = {p.stem: np.load(p, mmap_mode="r") for p in sorted(col_dir.glob("*.npy"))}
    order = ["sketch", "embed", *(f"score.{e}" for e in meta["experts"])]
    res = _result(ids, {k: cols[k] for k in order if k in cols})
    if len(res.ids) != meta["n"] or res.embeddings.shape[0] != meta["n"]:
        raise ValueError(f"{col_dir}: column store is inconsistent (n={meta['n']}, {len(res.ids)} ids)")
    return res


def read_meta(col_dir: Path) -> dict:
    return json.loads((Path(col_dir) / "meta.json").read_text())


def consolidate(shard_dir: Path, n: int, shard_size: int, out_dir: Path | None = None):
    """Copy the ``n`` rows of a finished pass's shards into one column store; -> its ScoreResult.

    ``out_dir`` None: the columns are filled in memory (one copy, no
    concatenation). Every shard must be done.
    """
    from safetensors import safe_open

    shard_dir = Path(shard_dir)
    w = ColumnWriter(n, out_dir)
    ids: list[str] = []
    have_sketch = None
    for i in range(-(-n // shard_size)):
        path = shard_dir / f"shard_{i:05d}.safetensors"
        if not (shard_dir / f"shard_{i:05d}.done").exists():
            raise FileNotFoundError(f"scoring shard {i} is not done: {path}")
        with safe_open(path, framework="pt") as f:
            part = json.loads(f.metadata()["ids"])
            rows = slice(i * shard_size, i * shard_size + len(part))
            keys = list(f.keys())
            if have_sketch is None:
                have_sketch = "sketch" in keys
            if have_sketch != ("sketch" in keys):
                raise ValueError(f"{shard_dir}: some scoring shards have sketches and others not; delete the folder")
            for key in keys:
                w.write(key, rows, f.get_tensor(key).numpy())
        ids += part
    if len(ids) != n:
        raise ValueError(f"{shard_dir}: shards hold {len(ids)} samples, expected {n}")
    experts_file = shard_dir / "experts.json"
    info = json.loads(experts_file.read_text()) if experts_file.exists() else {}
    scored = [k[6:] for k in w.cols if k.startswith("score.")]
    experts = [e for e in info.get("experts", []) if e in scored] + sorted(set(scored) - set(info.get("experts", [])))
    return w.finish(ids, {"experts": experts, "sketches": bool(have_sketch),
                          "computed": info.get("experts", experts)})


def gather_scores(ids: list[str], sources: dict[str, int], load_round, out_dir: Path | None = None):
    """Assemble one ScoreResult for ``ids`` from several rounds' column stores.

    sources: id -> the round whose store holds its row; load_round(r) -> that
    round's ScoreResult (memmapped or in memory). Rows are copied round by
    round in blocks of ``COPY_ROWS``; ``out_dir`` given: into a new column
    store there, else into arrays in memory. Experts missing from a store (a
    changed expert list) are dropped from the result, with a message.
    """
    positions: dict[int, list[int]] = {}  # round -> positions in ids whose scores it holds
    for i, x in enumerate(ids):
        positions.setdefault(sources[x], []).append(i)
    by_round = {r: load_round(r) for r in sorted(positions)}
    if not by_round:
        raise ValueError("nothing to gather: no ids")
    first = next(iter(by_round.values()))
    experts = [e for e in first.scores if all(e in res.scores for res in by_round.values())]
    dropped = sorted(set().union(*(res.scores for res in by_round.values())) - set(experts))
    if dropped:
        print(f"note: experts {dropped} are missing from some rounds' scoring passes and are not used")
    has_sketch = all(res.sketches is not None for res in by_round.values())
    w = ColumnWriter(len(ids), out_dir)
    for r, res in by_round.items():
        row_of = {x: j for j, x in enumerate(res.ids)}
        mine = np.asarray(positions[r], dtype=np.int64)
        try:
            src = np.fromiter((row_of[ids[i]] for i in mine), dtype=np.int64, count=len(mine))
        except KeyError as exc:
            raise RuntimeError(f"round {r}'s scoring pass has no scores for sample {exc.args[0]}") from None
        del row_of
        cols = {"embed": res.embeddings, **{f"score.{e}": res.scores[e] for e in experts}}
        if has_sketch:
            cols["sketch"] = res.sketches
        for a in range(0, len(mine), COPY_ROWS):
            dst, at = mine[a:a + COPY_ROWS], src[a:a + COPY_ROWS]
            if len(at) and np.all(np.diff(at) == 1):  # a contiguous run: a plain slice read
                at = slice(int(at[0]), int(at[-1]) + 1)
            for key, col in cols.items():
                w.write(key, dst, np.asarray(col[at]))
    return w.finish(ids, {"experts": experts, "sketches": has_sketch, "gathered": sorted(by_round)})


def remove_store(col_dir: Path) -> None:
    """Delete a column store (and a half-written one next to it)."""
    col_dir = Path(col_dir)
    shutil.rmtree(col_dir, ignore_errors=True)
    shutil.rmtree(col_dir.with_name(col_dir.name + ".tmp"), ignore_errors=True)


def build_round_store(d: Path, t: int, ids: list[str], todo: list[str], sources: dict[str, int] | None,
                      held_by: int | None, prev: Path | None, shard_size: int) -> None:
    """Round ``t``'s finished pass (``d/shards``) -> its store ``d/columns`` for the active pool ``ids``.

    Whole-pool pass (``sources`` None): the shards are the store. Partial
    refresh: the pass (``todo``, in pool order) is consolidated into
    ``d/pass``, and every id whose ``sources`` round is not ``t`` is copied
    from ``prev``, the store of round ``held_by`` (which holds every row the
    plan reuses).
    """
    if sources is None:
        consolidate(d / "shards", len(ids), shard_size, d / "columns")
        return
    if not is_complete(d / "pass"):
        consolidate(d / "shards", len(todo), shard_size, d / "pass")
    here = {x: t if r == t else held_by for x, r in sources.items()}  # round whose store has the row now
    stores = {t: d / "pass", held_by: prev}
    gather_scores(ids, here, lambda r: open_scores(stores[r]), d / "columns")


def release_before(layout: RunLayout, t: int) -> None:
    """Round ``t``'s store is complete: delete its shards and pass, and every earlier round's store
    and ``sources.json`` (which round last scored each sample).

    Idempotent (a resumed stage runs it again). Nothing later reads them:
    round ``t``'s store holds every active sample's row, and a later partial
    refresh reads the sources of the latest round that scored (t or after).
    """
    d = layout.stage_dir(t, "score")
    shutil.rmtree(d / "shards", ignore_errors=True)
    remove_store(d / "pass")
    for r in range(1, t):
        old = layout.stage_dir(r, "score")
        remove_store(old / "columns")
        remove_store(old / "pass")
        shutil.rmtree(old / "shards", ignore_errors=True)
        layout.score_sources(r).unlink(missing_ok=True)
