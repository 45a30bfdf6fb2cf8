"""What a selection writes, so users can see why each sample was picked.

``selection.json``: the selected ids and, per pseudo-skill cluster, its size,
its share of the budget, the routed expert and every expert's entropy.
``scores.parquet``: one row per pool sample: id, selected, cluster, routed
expert and every expert's score. Once a later round has selected, a run keeps
only the selected rows of an earlier round's table (:func:`slim_scores_table`):
the table of every round would otherwise hold the whole pool again.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from lifelong.selection.strategies import Selection


def selection_record(ids: list[str], sel: Selection, **meta) -> dict:
    clusters = []
    if sel.labels is not None and sel.entropy is not None:
        sizes = np.bincount(sel.labels, minlength=len(sel.experts))
        for k, e in enumerate(sel.experts):
            clusters.append({"id": k, "size": int(sizes[k]), "share": int(sel.shares[k]), "expert": e,
                             "entropy": {n: float(h) for n, h in zip(sel.entropy_experts, sel.entropy[k])}})
    chosen = [ids[i] for i in sel.indices]
    return {**meta, "budget": len(chosen), "pool_size": len(ids), "ids": chosen, "clusters": clusters}


def write_selection(out_dir: Path, ids: list[str], sel: Selection, scores: dict[str, np.ndarray] | None,
                    **meta) -> dict:
    """Write ``selection.json`` (atomically) and, when scores exist, ``scores.parquet``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rec = selection_record(ids, sel, **meta)
    if scores is not None:
        write_scores_table(out_dir / "scores.parquet", ids, scores, sel)
    tmp = out_dir / "selection.json.tmp"
    tmp.write_text(json.dumps(rec, indent=1))
    os.replace(tmp, out_dir / "selection.json")
    return rec


def write_scores_table(path: Path, ids: list[str], scores: dict[str, np.ndarray], sel: Selection,
                       block_rows: int = 65536) -> None:
    """One row per pool sample, written in row groups of ``block_rows`` (scores may be memmaps:
    only one block of each column is in memory at a time)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    picked = np.zeros(len(ids), dtype=bool)
    picked[sel.indices] = True
    writer = None
    try:
        for a in range(0, max(len(ids), 1), block_rows):
            b = a + block_rows
            cols = {"id": ids[a:b], "selected": picked[a:b]}
            if sel.labels is not None:
                cols["cluster"] = sel.labels[a:b]
                if sel.experts:
                    cols["routed_expert"] = [sel.experts[k] for k in sel.labels[a:b]]
            cols.update({f"score_{k}": np.asarray(v[a:b]) for k, v in scores.items()})
            table = pa.table(cols)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


# Schema metadata of a table cut to its selected rows.
SLIM_KEY, SLIM_VALUE = b"lifelong.rows", b"selected"


def slim_scores_table(path: Path) -> bool:
    """Cut the table at ``path`` to its selected rows (in place, atomically); False if absent or already cut.

    The selected rows keep the explanation of what was trained on (cluster,
    routed expert, scores); the rest of the pool's rows go.
    """
    import pyarrow.parquet as pq

    if not path.is_file():
        return False
    meta = pq.read_schema(path).metadata or {}
    if meta.get(SLIM_KEY) == SLIM_VALUE:
        return False
    table = pq.read_table(path, filters=[("selected", "==", True)])
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), SLIM_KEY: SLIM_VALUE})
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return True
