"""Data cards (Hugging Face dataset-card convention) for the built-in datasets.

One function renders the card; it is written both next to each prepared
dataset (``out/<name>/README.md``) and into the repository's ``data_cards/``
(at the ``full`` scale), and a test checks the two never drift.
"""
from __future__ import annotations

import json
from pathlib import Path

from lifelong.data.stream.config import SCALES, StreamConfig, corruption_counts
from lifelong.data.stream.generators import DATASETS, DatasetSpec, get_spec

# Measured ceilings (eval/bench_learn.py --write-ceilings): task -> accuracy and how it was measured.
CEILINGS = Path(__file__).resolve().parent / "ceilings.json"


def load_ceilings() -> dict:
    """``{task: {"accuracy", "epochs", "n_train", "n_test", "command", ...}}``; empty when never measured."""
    return json.loads(CEILINGS.read_text(encoding="utf-8")) if CEILINGS.exists() else {}


def ceiling_lines(name: str) -> list[str]:
    c = load_ceilings().get(name)
    if c is None:
        return ["Not measured yet (`python -m eval.bench_learn --only ceilings --write-ceilings`)."]
    return [
        f"**{c['accuracy']:.2f}** exact match on the {c['n_test']} test questions of the `full` scale, for "
        f"the offline default model (stage-1 projector, the `configs/demo.yaml` model and training "
        f"settings) trained on this dataset alone, on its whole train split ({c['n_train']} records, "
        f"{c['epochs']:g} epochs); before training: {c['before']:.2f}. Measured by `{c['command']}`.",
    ]


# Hugging Face size_categories buckets: (upper bound exclusive, label).
_SIZE_BUCKETS = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


def size_category(n: int) -> str:
    for bound, label in _SIZE_BUCKETS:
        if n < bound:
            return label
    return "n>1M"


def _yaml_list(key: str, values) -> list[str]:
    # JSON strings are valid YAML scalars, which keeps quoting exact and deterministic.
    return [f"{key}:"] + [f"- {json.dumps(v)}" for v in values]


def _fill(text: str, values: dict[str, str]) -> str:
    for token, value in values.items():
        text = text.replace(token, value)
    return text


def render_card(spec: DatasetSpec, cfg: StreamConfig, scale: str) -> str:
    """The Markdown data card of ``spec`` as prepared at ``scale`` (front-matter sizes are that scale's)."""
    sizes = cfg.sizes(scale)
    c = spec.card
    fill = {"{max_count}": str(cfg.max_count)}  # config values the card texts refer to
    modality = "image + text" if spec.has_images else "text only"
    front = [
        "---",
        f"pretty_name: {json.dumps(c.pretty_name)}",
        f"license: {c.license}",
        *_yaml_list("language", ["en"]),
        *_yaml_list("task_categories", c.task_categories),
        *_yaml_list("size_categories", [size_category(sizes.train + sizes.test)]),
        *_yaml_list("source_datasets", c.source_datasets),
        *_yaml_list("annotations_creators", ["machine-generated"]),
        *_yaml_list("multilinguality", ["monolingual"]),
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        "    path: train.json",
        "  - split: test",
        "    path: test.json",
        "dataset_info:",
        "  splits:",
        "  - name: train",
        f"    num_examples: {sizes.train}",
        "  - name: test",
        f"    num_examples: {sizes.test}",
        "---",
    ]
    rows = []
    for name in SCALES:
        s = cfg.sizes(name)
        dup, mis, ung = corruption_counts(cfg, s.train, spec.has_images)
        rows.append(f"| {name} | {s.train} | {dup} | {mis} | {ung} | {s.test} |")
    example_q = "`<image>\\n` + question" if spec.has_images else "question (no `<image>` token, no `image` key)"
    ung_line = (
        f"- **ungrounded** ({cfg.ungrounded_rate:.0%}): the image is replaced by uniform random noise "
        "unrelated to the question; the answer is kept (`provenance.noise = \"ungrounded\"`)."
        if spec.has_images
        else "- **ungrounded**: none; the dataset has no images."
    )
    body = [
        "",
        f"# {c.pretty_name}",
        "",
        f"Skill: {spec.skill}. One dataset of the `lifelong` built-in offline task stream "
        f"(`lifelong data prepare`, dataset name `{spec.name}`); {modality}.",
        "",
        "## Format",
        "",
        "LLaVA JSON: `train.json` and `test.json` are arrays of records "
        '`{"id", "image", "conversations", "task", "provenance"}`; `image` is a PNG path relative to '
        f"this folder ({cfg.image_size}x{cfg.image_size} RGB). The human turn is {example_q}; the gpt turn is "
        f"a single short answer, scored by `{spec.metric}`. Answers: {_fill(c.answers, fill)}.",
        "",
        "## Splits and sizes",
        "",
        "| scale | train | of which near-duplicates | mislabeled | ungrounded | test |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"This copy was prepared at scale `{scale}`. Test splits are clean: no duplicates, no noise, and "
        "no test sample's content appears in the train split.",
        "",
        "## How it was generated",
        "",
        _fill(c.generation, fill),
        "",
        "Every random choice comes from a NumPy generator seeded by (seed, dataset name, purpose), so the "
        "same seed gives byte-identical files.",
        "",
        "## Ceiling",
        "",
        *ceiling_lines(spec.name),
        "",
        "## Known noise and duplicates",
        "",
        "Injected into the train split only, at exact counts (rate x train size, rounded half up), and "
        "recorded per record in `provenance`:",
        "",
        f"- **near-duplicates** ({cfg.duplicate_rate:.0%}): a copy of a clean train record with the same "
        "question and answer and a small jitter (image shifted by "
        f"{cfg.jitter_px} px, or the question reworded for text-only); `provenance.duplicate_of` is the "
        "id of the copied record.",
        f"- **mislabeled** ({cfg.mislabel_rate:.0%}): the answer is replaced by another answer of the same "
        "kind (`provenance.noise = \"mislabeled\"`, the correct one in `provenance.true_answer`).",
        ung_line,
        "",
        "## Provenance fields",
        "",
        "`generator`, `dataset`, `split`, `seed`, `duplicate_of` (id or null), `noise` (null, "
        "`mislabeled` or `ungrounded`), `true_answer`, plus the ground truth the answer was derived from "
        "(see the generators in `lifelong/data/stream/generators/`).",
        "",
        "## License",
        "",
        f"`{c.license}`. {c.license_note}",
        "",
    ]
    return "\n".join(front + body)


def write_cards(out_dir: Path, cfg: StreamConfig | None = None, scale: str = "full", names: list[str] | None = None) -> list[Path]:
    """Write ``<out_dir>/<name>.md`` for every registered dataset (or ``names``); returns the paths."""
    cfg = cfg or StreamConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or sorted(DATASETS):
        path = out_dir / f"{name}.md"
        path.write_text(render_card(get_spec(name), cfg, scale), encoding="utf-8")
        paths.append(path)
    return paths
