"""Cards: the model card of an exported adapter and the data card of a round.

- :func:`model_card` renders ``README.md`` of an export: YAML front matter in
  the Hugging Face convention (``base_model``, ``library_name: peft``,
  ``datasets``, ``tags``, ``metrics`` and a ``model-index`` with the values)
  followed by a summary of the round and the accuracy matrix.
- :func:`write_round_card` writes ``<run>/data_cards/round_<t>.md``: selected
  and pruned counts per source dataset and task, and how many of them were
  near-duplicates or noisy according to each sample's provenance (the built-in
  stream records ``provenance.duplicate_of`` and ``provenance.noise``; the pool
  keeps a pruned sample's provenance after deleting its content, until the
  next round's report, when this card is written).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import yaml

from lifelong.export.lineage import round_files
from lifelong.layout import RunLayout, write_atomic

# Metric name in lifelong.evaluation.metrics -> human name on the card.
CARD_METRICS = {
    "avg_acc": "Average accuracy",
    "forgetting": "Forgetting",
    "bwt": "Backward transfer (BWT)",
    "fwt": "Forward transfer (FWT)",
}
CARD_TAGS = ["lifelong", "continual-learning", "adapt-inf", "lora", "peft", "image-text-to-text"]


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.4f}"
    return str(x)


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in rows]
    return out


# ---- model card -------------------------------------------------------------------


def model_card(
    *,
    run: str,
    round_: int,
    base_model: str,
    card_base_model: str | None,
    family: str,
    strategy: str | None,
    datasets: list[str],
    metrics: dict[str, float | None],
    tasks: list[str],
    accuracy: list[list[float | None]],
    lineage_rounds: list[dict],
    merged: bool,
    loader: str,
    base_note: str | None = None,
) -> str:
    """Text of ``README.md`` for the adapter after round ``round_``.

    ``base_model``: the identifier written into ``adapter_config.json``;
    ``card_base_model``: a hub id for the front matter's ``base_model`` (None =
    left out, e.g. a random test model). ``metrics``: CL metrics of the
    accuracy matrix rows 0..round_ (None = undefined). ``accuracy``: those rows
    (None = not evaluated). ``lineage_rounds``: :func:`~lifelong.export.lineage.round_lineage`
    records of rounds 1..round_. ``loader``: the code that loads the export.
    ``base_note``: what the base is made of (a paragraph under "Base"), or None.
    """
    front: dict = {}
    if card_base_model:
        front["base_model"] = card_base_model
    front["library_name"] = "transformers" if merged else "peft"
    front["pipeline_tag"] = "image-text-to-text"
    front["datasets"] = list(datasets)
    front["tags"] = CARD_TAGS + (["merged"] if merged else [])
    defined = {k: v for k, v in metrics.items() if k in CARD_METRICS and v is not None}
    front["metrics"] = ["accuracy"] + [k for k in CARD_METRICS if k != "avg_acc"]
    name = f"{run}-round{round_}"
    front["model-index"] = [{
        "name": name,
        "results": [{
            "task": {"type": "image-text-to-text", "name": "Lifelong instruction tuning"},
            "dataset": {"type": "lifelong-stream", "name": f"{run} stream ({', '.join(datasets)})"},
            "metrics": [{"type": k, "name": CARD_METRICS[k], "value": round(float(v), 6)} for k, v in defined.items()],
        }],
    }]
    lines = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", ""]
    kind = "Merged full weights" if merged else "A LoRA adapter (projector included)"
    lines += [
        f"# {name}",
        "",
        f"{kind} trained by `lifelong` (Adapt-∞ lifelong multimodal instruction tuning) "
        f"in run `{run}`, saved after round {round_} of {len(lineage_rounds)} trained rounds. "
        f"Model family: `{family}`; base model: `{base_model}`; selection strategy: `{strategy or 'unknown'}`.",
        "",
        *(["## Base", "", base_note, ""] if base_note else []),
        "## How to load",
        "",
        "```python",
        loader.strip(),
        "```",
        "",
        "The run's model config is in `lifelong_model.yaml`; which samples trained these weights is in "
        "`lineage.json` (per round: dataset, selected ids, clusters and their routed experts, pruned ids).",
        "",
        "## Rounds",
        "",
    ]
    rows = []
    for r in lineage_rounds:
        sel = r["selected"]
        pr = r["pruned"]
        experts = Counter(c["expert"] for c in r["clusters"] or [])
        rows.append([
            r["round"], r["dataset"], r["pool_size"], None if sel is None else len(sel),
            None if pr is None else len(pr), ", ".join(f"{e} ×{n}" for e, n in sorted(experts.items())) or None,
        ])
    lines += _table(["round", "dataset arrived", "pool size", "selected", "pruned", "clusters → routed expert"], rows)
    lines += ["", "## Continual-learning metrics", ""]
    lines += _table(["metric", "value"], [[CARD_METRICS[k], metrics.get(k)] for k in CARD_METRICS])
    lines += [
        "",
        "BWT and FWT follow GEM over the accuracy matrix below; forgetting is the mean drop from a "
        "task's best accuracy in any earlier row (the base model's included) to the last; "
        "– = undefined this early in the stream or not evaluated.",
        "",
        "## Accuracy per task (row = after round, 0 = before training)",
        "",
    ]
    if tasks and accuracy:
        lines += _table(["round", *tasks], [[t, *row] for t, row in enumerate(accuracy)])
    else:
        lines.append("No evaluation was recorded for this run.")
    return "\n".join(lines) + "\n"


# ---- data card of a round -------------------------------------------------------------


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
    lines += _table(
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
        lines += _table(["cluster", "size", "share", "routed expert"],
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
