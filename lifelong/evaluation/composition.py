"""What a round chose: per dataset and task, samples in the pool, selected and pruned; the share of
each defect kind among them; each selection cluster's size, routed expert and purity.

Computed by the report stage while the round's pruned samples still have their rows (the next
round's report deletes them), written to ``rounds/<t>/report/composition.json`` and copied into a
comparison's result file, so a round's composition outlives its run directory.

Defect kinds come from the built-in streams' provenance flags (``lifelong/data/stream/defects.py``).
This is a yardstick, read after the round: no selector sees it. Records from outside the built-in
streams have no flags, so their defect shares are 0.

The round's pool is what selection saw: the active samples after pruning plus the ones this
round pruned (ingestion comes before selection, pruning after training).
"""
from __future__ import annotations

from collections import Counter

from lifelong.data.stream.defects import DEFECTS, defect_of
from lifelong.layout import RunLayout, read_json, write_json


def _defect_shares(samples) -> dict[str, float]:
    """Share of each defect kind (and of any defect) among ``samples``; {} when there are none."""
    if not samples:
        return {}
    kinds = Counter(defect_of(s.provenance)[0] for s in samples)
    n = len(samples)
    out = {k: kinds.get(k, 0) / n for k in DEFECTS}
    out["any"] = sum(v for k, v in kinds.items() if k is not None) / n
    return out


def _by(samples, selected: set, pruned: set, key) -> dict[str, dict[str, int]]:
    """``{key: {"pool", "selected", "pruned"}}`` counts."""
    out: dict[str, dict[str, int]] = {}
    for s in samples:
        row = out.setdefault(key(s), {"pool": 0, "selected": 0, "pruned": 0})
        row["pool"] += 1
        row["selected"] += s.id in selected
        row["pruned"] += s.id in pruned
    return dict(sorted(out.items()))


def round_composition(pool, selected_ids: list[str], pruned_ids: list[str],
                      clusters: list[dict] | None = None, assignment: dict[str, int] | None = None) -> dict:
    """The composition of one round (see the module docstring).

    ``pool``: the pool store (its active samples plus ``pruned_ids`` are the round's pool);
    ``clusters``: the selection's cluster records (``id``, ``size``, ``expert``; none for strategies
    that do not cluster); ``assignment``: sample id -> cluster id.
    """
    pruned = set(pruned_ids)
    members = pool.labels() + pool.labels(pruned, status="pruned")
    selected = set(selected_ids)
    chosen = [s for s in members if s.id in selected]
    gone = [s for s in members if s.id in pruned]
    out = {
        "pool": len(members), "selected": len(chosen), "pruned": len(gone),
        "by_dataset": _by(members, selected, pruned, lambda s: s.dataset),
        "by_task": _by(members, selected, pruned, lambda s: s.task),
        "defects": {"pool": _defect_shares(members), "selected": _defect_shares(chosen),
                    "pruned": _defect_shares(gone)},
        "clusters": [],
    }
    if clusters and assignment:
        by_cluster: dict[int, list] = {}
        for s in members:
            if s.id in assignment:
                by_cluster.setdefault(int(assignment[s.id]), []).append(s)
        for c in clusters:
            got = by_cluster.get(int(c["id"]), [])
            tasks = Counter(s.task for s in got)
            top, n_top = tasks.most_common(1)[0] if tasks else (None, 0)
            out["clusters"].append({
                "id": int(c["id"]), "size": int(c["size"]), "expert": c.get("expert"),
                "selected": sum(s.id in selected for s in got),
                "task": top, "purity": n_top / len(got) if got else float("nan"),
                "defect_share": _defect_shares(got).get("any", float("nan")),
            })
    return out


def write_round_composition(layout: RunLayout, pool, t: int) -> dict:
    """Round ``t``'s composition from its selection, prune record and score table, to its report folder."""
    sel = read_json(layout.selection(t)) or {}
    pruned_ids = [r["id"] for r in (read_json(layout.pruned(t)) or {}).get("records", [])]
    assignment = None
    if sel.get("clusters") and layout.scores_table(t).is_file():
        import pyarrow.parquet as pq

        table = pq.read_table(layout.scores_table(t), columns=["id", "cluster"]).to_pydict()
        assignment = dict(zip(table["id"], table["cluster"]))
    comp = {"round": t, **round_composition(pool, sel.get("ids", []), pruned_ids, sel.get("clusters"),
                                            assignment)}
    write_json(layout.composition(t), comp)
    return comp
