"""The model card of an exported adapter.

:func:`model_card` renders ``README.md`` of an export: YAML front matter in the
Hugging Face convention (``base_model``, ``library_name: peft``, ``datasets``,
``tags``, ``metrics`` and a ``model-index`` with the values) followed by a
summary of the round and the accuracy matrix. The CL metrics shown are the
registry's headline ones (:func:`lifelong.evaluation.metrics.headline`). The
data card of a round is :mod:`lifelong.evaluation.data_card` (the report stage
writes it).
"""
from __future__ import annotations

from collections import Counter

import yaml

from lifelong.evaluation.data_card import markdown_table
from lifelong.evaluation.metrics import headline

CARD_TAGS = ["lifelong", "continual-learning", "adapt-inf", "lora", "peft", "image-text-to-text"]


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
    shown = {m.name: m for m in headline()}
    defined = {k: v for k, v in metrics.items() if k in shown and v is not None}
    front["metrics"] = [m.hub_id for m in shown.values()]
    name = f"{run}-round{round_}"
    front["model-index"] = [{
        "name": name,
        "results": [{
            "task": {"type": "image-text-to-text", "name": "Lifelong instruction tuning"},
            "dataset": {"type": "lifelong-stream", "name": f"{run} stream ({', '.join(datasets)})"},
            "metrics": [{"type": k, "name": shown[k].label, "value": round(float(v), 6)} for k, v in defined.items()],
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
    lines += markdown_table(["round", "dataset arrived", "pool size", "selected", "pruned", "clusters → routed expert"], rows)
    lines += ["", "## Continual-learning metrics", ""]
    lines += markdown_table(["metric", "value"], [[m.label, metrics.get(k)] for k, m in shown.items()])
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
        lines += markdown_table(["round", *tasks], [[t, *row] for t, row in enumerate(accuracy)])
    else:
        lines.append("No evaluation was recorded for this run.")
    return "\n".join(lines) + "\n"
