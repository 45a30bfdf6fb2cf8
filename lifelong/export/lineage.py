"""Which data made an adapter: the per-round record behind ``lineage.json``.

Read from the files the loop leaves in a run directory (nothing is recomputed):

    rounds/<t>/ingest/ingest.json     dataset that arrived, added/unchanged/quarantined, the task
                                      labels of its training records
    rounds/<t>/select/selection.json  ids selected for training, clusters and routed experts
    rounds/<t>/prune/pruned.json      ids removed from the pool for good after training
                                      (pruned.json.gz once a later round has reported)

The adapter saved after round ``t`` (``adapters/round_<t>``) was trained, in
the default ``continue`` adapter policy, on the selections of rounds 1..t, so
its lineage is the list of those rounds. A file the loop did not write (a
skipped stage) appears as ``null``, never as an empty list, so "nothing was
pruned" and "not recorded" stay distinguishable.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from lifelong.evaluation.data_card import round_files
from lifelong.layout import RunLayout

LINEAGE_VERSION = 1


def round_lineage(run_dir: str | Path, t: int) -> dict:
    """One round of the lineage: dataset, the tasks it taught, selected ids, clusters with routed experts, pruned ids.

    ``tasks``: the task labels of the dataset's training records (None in a
    run recorded before datasets and tasks were told apart).
    """
    f = round_files(run_dir, t)
    sel, prune, ing = f["selection"], f["prune"], f["ingest"]
    dataset = (sel or {}).get("dataset") or (ing or {}).get("dataset")
    return {
        "round": t,
        "dataset": dataset,
        "tasks": None if ing is None or "tasks" not in ing else list(ing["tasks"]),
        "ingest": None if ing is None else {k: ing.get(k) for k in ("added", "unchanged", "quarantined")},
        "strategy": None if sel is None else sel.get("strategy"),
        "pool_size": None if sel is None else sel.get("pool_size"),
        "budget": None if sel is None else sel.get("budget"),
        "selected": None if sel is None else list(sel["ids"]),
        "clusters": None if sel is None else [
            {"id": c["id"], "size": c["size"], "share": c.get("share"), "expert": c["expert"]}
            for c in sel.get("clusters", [])
        ],
        "prune_cap": None if prune is None else prune.get("cap"),
        "pruned": None if prune is None else [
            {"id": r["id"], "cluster": r.get("cluster"), "max_sim": r.get("max_sim"), "reason": r.get("reason")}
            for r in prune["records"]
        ],
    }


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_lineage(run_dir: str | Path, t: int) -> dict:
    """``lineage.json`` of the adapter after round ``t``.

    ``trained_on`` is the union, in first-selected order, of the ids selected
    in rounds 1..t: every sample whose gradient reached this adapter.
    ``datasets``: the datasets that arrived in those rounds; ``tasks``: the
    task labels they taught, in first-taught order.
    ``adapter_sha256`` identifies the weights file the lineage belongs to.
    """
    run_dir = Path(run_dir)
    rounds = [round_lineage(run_dir, r) for r in range(1, t + 1)]
    trained: dict[str, None] = {}
    for r in rounds:
        for i in r["selected"] or []:
            trained.setdefault(i, None)
    weights = RunLayout(run_dir).adapter_dir(t) / "adapter_model.safetensors"
    return {
        "lineage_version": LINEAGE_VERSION,
        "run": run_dir.name,
        "round": t,
        "adapter_sha256": sha256_file(weights) if weights.is_file() else None,
        "datasets": [r["dataset"] for r in rounds if r["dataset"] is not None],
        "tasks": list(dict.fromkeys(k for r in rounds for k in (r["tasks"] or []))),
        "trained_on": list(trained),
        "rounds": rounds,
    }
