"""The data card of a round: what was selected and pruned, per source dataset and task.

:func:`write_round_card` writes ``<run>/data_cards/round_<t>.md`` (the report
stage, after every round): selected and pruned counts per source dataset and
task, and how many of them were near-duplicates or noisy according to each
sample's provenance (the built-in stream records ``provenance.duplicate_of``
and ``provenance.noise``; the pool keeps a pruned sample's provenance after
deleting its content, until the next round's report, when this card is
written). :func:`round_files` reads the round's stage records, which the
export's lineage reads too.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from lifelong.layout import RunLayout, read_json, write_atomic


def round_files(run_dir: str | Path, t: int) -> dict:
    """The raw stage records of round ``t``: ``{"ingest", "selection", "prune"}`` (None = absent)."""
    layout = RunLayout(run_dir)
    return {
        "ingest": read_json(layout.ingest_report(t)),
        "selection": read_json(layout.selection(t)),
        "prune": read_json(layout.pruned(t)),
    }


def fmt_cell(x) -> str:
    """A table cell: 4 decimals for floats, "–" for None and non-finite numbers."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.4f}"
    return str(x)


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    """Lines of a markdown table (cells as :func:`fmt_cell` writes them)."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt_cell(v) for v in r) + " |" for r in rows]
    return out


def sample_meta(pool, ids: list[str]) -> dict[str, tuple[str, str, dict]]:
    """``{id: (dataset, task, provenance)}`` of samples in any status (pruned ones included)."""
    out: dict[str, tuple[str, str, dict]] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        q = ",".join("?" * len(chunk))
        for sid, dataset, task, prov in pool.db.execute(
            f"SELECT id, dataset, task, provenance FROM samples WHERE id IN ({q})", chunk
        ):
            out[sid] = (dataset, task, json.loads(prov))
    return out


def is_duplicate(provenance: dict) -> bool:
    return provenance.get("duplicate_of") is not None


def noise_kind(provenance: dict) -> str | None:
    return provenance.get("noise") or None


def count_by_group(ids: list[str], meta: dict[str, tuple[str, str, dict]]) -> dict[tuple[str, str], Counter]:
    """Per (dataset, task): ``{"n", "dup", "noisy"}`` counts of ``ids``; unknown ids under ("?", "?")."""
    out: dict[tuple[str, str], Counter] = {}
    for i in ids:
        dataset, task, prov = meta.get(i, ("?", "?", {}))
        c = out.setdefault((dataset, task), Counter())
        c["n"] += 1
        c["dup"] += is_duplicate(prov)
        c["noisy"] += noise_kind(prov) is not None
    return out


def round_card(run: str, t: int, files: dict, meta: dict[str, tuple[str, str, dict]]) -> str:
    """Markdown data card of round ``t`` from its stage records (see :func:`round_files`) and sample metadata."""
    ing, sel, prune = files["ingest"], files["selection"], files["prune"]
    selected = [] if sel is None else list(sel["ids"])
    pruned = [] if prune is None else [r["id"] for r in prune["records"]]
    dataset = (sel or {}).get("dataset") or (ing or {}).get("dataset") or "?"
    lines = [f"# Data card: run `{run}`, round {t}", ""]
    if ing is not None:
        lines.append(
            f"Dataset arrived: **{dataset}** ({ing.get('added', 0)} samples added, "
            f"{ing.get('unchanged', 0)} already in the pool, {ing.get('quarantined', 0)} quarantined)."
        )
    else:
        lines.append(f"Dataset arrived: **{dataset}** (no ingest record).")
    if sel is not None:
        lines.append(
            f"Selection (`{sel.get('strategy')}`): {len(selected)} of {sel.get('pool_size')} active pool samples "
            "trained on."
        )
    else:
        lines.append("Selection: not run this round (no training).")
    if prune is not None:
        cap = prune.get("cap")
        lines.append(
            f"Pruning (cap {'none' if cap is None else cap}): {len(pruned)} samples removed from the pool for good."
        )
    else:
        lines.append("Pruning: no record.")
    lines += ["", "## Per source dataset and task", ""]
    sel_g, pr_g = count_by_group(selected, meta), count_by_group(pruned, meta)
    keys = sorted(set(sel_g) | set(pr_g))
    rows, total = [], Counter()
    for k in keys:
        s, p = sel_g.get(k, Counter()), pr_g.get(k, Counter())
        row = [s["n"], s["dup"], s["noisy"], p["n"], p["dup"], p["noisy"]]
        for name, v in zip(("sn", "sd", "sx", "pn", "pd", "px"), row):
            total[name] += v
        rows.append([k[0], k[1], *row])
    rows.append(["**total**", "", *(total[n] for n in ("sn", "sd", "sx", "pn", "pd", "px"))])
    lines += markdown_table(
        ["dataset", "task", "selected", "selected near-dup", "selected noisy", "pruned", "pruned near-dup",
         "pruned noisy"],
        rows,
    )
    kinds = Counter(noise_kind(meta[i][2]) for i in pruned if i in meta and noise_kind(meta[i][2]))
    lines += [
        "",
        "## Duplicates and noise removed",
        "",
        f"- near-duplicates pruned (`provenance.duplicate_of` set): {total['pd']}",
        f"- noisy samples pruned (`provenance.noise` set): {total['px']}"
        + (" (" + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ")" if kinds else ""),
        "",
        "Counts come from each sample's provenance as its source recorded it; a near-duplicate pair counts "
        "once, on the copy, so pruning the original instead shows up as 0 here.",
    ]
    clusters = (sel or {}).get("clusters") or []
    if clusters:
        lines += ["", "## Clusters and routed experts", ""]
        lines += markdown_table(["cluster", "size", "share", "routed expert"],
                        [[c["id"], c["size"], c.get("share"), c["expert"]] for c in clusters])
    lines += [
        "",
        f"Ids: `rounds/{t}/select/selection.json` (selected), `rounds/{t}/prune/pruned.json` (pruned).",
    ]
    return "\n".join(lines) + "\n"


def write_round_card(run_dir: str | Path, t: int) -> Path:
    """Write ``<run_dir>/data_cards/round_<t>.md`` (atomically) and return its path."""
    from lifelong.data.pool import Pool

    layout = RunLayout(run_dir)
    files = round_files(run_dir, t)
    ids = list((files["selection"] or {}).get("ids", []))
    ids += [r["id"] for r in (files["prune"] or {}).get("records", [])]
    with Pool(layout.pool) as pool:
        meta = sample_meta(pool, ids)
    text = round_card(layout.root.name, t, files, meta)
    path = layout.data_card(t)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text)
    return path
