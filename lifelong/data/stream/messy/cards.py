"""Data cards of the ``messy`` stream's datasets: composition and defect rates, counted on
the composed records (so the card states what the files hold, for its scale and seed)."""
from __future__ import annotations

import json
from collections import Counter

from lifelong.data.stream.cards import size_category
from lifelong.data.stream.config import StreamConfig
from lifelong.data.stream.defects import DEFECTS
from lifelong.data.stream.messy.compose import MESSY_DATASETS, Dataset

# The MessyConfig field that specifies a dataset's rate of a defect.
SPEC_OF = {"templated": {"near_copy": "near_copy_rate"}, "noisy": {"wrong_label": "wrong_label_rate",
           "swapped_image": "swapped_image_rate"}, "duplicates": {"near_copy": "copy_rate"},
           "small_tasks": {"irrelevant_image": "irrelevant_image_rate"}}
SOURCES = {
    "vqa_shape": "easy-vqa package images (MIT License, Victor Zhou)",
    "vqa_color": "easy-vqa package images (MIT License, Victor Zhou)",
    "digits": "scikit-learn's copy of the UCI handwritten digits (CC BY 4.0)",
    "counting": "scenes drawn by this project's code",
    "position": "scenes drawn by this project's code",
    "category": "word lists written in this project's code",
    "compare": "numbers drawn by this project's code",
}


def render_card(ds: Dataset, cfg: StreamConfig, scale: str) -> str:
    """The Markdown card of composed dataset ``ds`` at ``scale``."""
    m = cfg.messy
    tasks = MESSY_DATASETS[ds.name][0]
    n = len(ds.records)
    h = m.held_out_size(scale)
    per_task = Counter(r.task for r in ds.records)
    defect_by_task = Counter((r.task, r.defect) for r in ds.records if r.defect)
    defects = Counter(r.defect for r in ds.records if r.defect)
    front = [
        "---",
        f"pretty_name: {json.dumps(f'messy stream: {ds.name}')}",
        "license: other",
        "language:",
        "- \"en\"",
        "task_categories:",
        "- \"visual-question-answering\"",
        "- \"question-answering\"",
        "size_categories:",
        f"- {json.dumps(size_category(n))}",
        "annotations_creators:",
        "- \"machine-generated\"",
        "configs:",
        "- config_name: default",
        "  data_files:",
        *[line for split in ("train", "val", "test") for line in (f"  - split: {split}", f"    path: {split}.json")],
        "---",
    ]
    rows = []
    for t in tasks:
        cells = [str(defect_by_task.get((t, d), 0)) for d in DEFECTS]
        rows.append(f"| `{t}` | {per_task.get(t, 0)} | " + " | ".join(cells) + " |")
    rows.append(f"| all | {n} | " + " | ".join(str(defects.get(d, 0)) for d in DEFECTS) + " |")
    rates = []
    for d in DEFECTS:
        spec = SPEC_OF.get(ds.name, {}).get(d)
        if defects.get(d) or spec:
            target = f"{getattr(m, spec):.0%} (`messy.{spec}`)" if spec else "—"
            if d == "dominant_answer":
                target = (f"one answer in {m.dominant_share:.0%} of the records (`messy.dominant_share`); its "
                          "records beyond the other answers' mean count are flagged")
            rates.append(f"| `{d}` | {defects.get(d, 0)} | {defects.get(d, 0) / n:.1%} | {target} |")
    reused = sum(r.image_of is not None and r.defect is None for r in ds.records)
    body = [
        "",
        f"# messy stream: `{ds.name}`",
        "",
        f"{ds.summary[0].upper()}{ds.summary[1:]}. One of the six datasets of the `messy` built-in stream "
        "(`stream.builtin_config.stream: messy`, `configs/messy.yaml`), which mimics the structure (not the "
        "content) of the Adapt-∞ paper's stream: large templated mixtures, skills shared across datasets, a "
        "rare skill, label noise, duplicates and image-irrelevant samples.",
        "",
        "## Composition",
        "",
        f"Train records at scale `{scale}` (seed 0 for the copy in `data_cards/messy/`), per task (the record's "
        "`task`, its evaluation column) and defect:",
        "",
        "| task | records | " + " | ".join(f"`{d}`" for d in DEFECTS) + " |",
        "|---|---" + "|---" * len(DEFECTS) + "|",
        *rows,
        "",
        *(["Defect rates (counts are exact: rate x records, rounded half up; they do not depend on the seed):",
           "", "| defect | records | share | specified |", "|---|---|---|---|", *rates, ""] if rates else
          ["No defects: every record is clean.", ""]),
        *([f"{reused} records ask a new question about the image of an earlier dataset's record "
           "(`provenance.image_of`); that is overlap, not a defect.", ""] if reused else []),
        "Sources: " + "; ".join(f"`{t}`: {SOURCES[t]}" for t in tasks) + ".",
        "",
        "## Held-out splits",
        "",
        f"Clean and per task: {h} test and {h} validation questions of every task, in the folder of the first "
        "dataset of the stream that teaches the task (this dataset's `test.json` and `val.json` are empty "
        "when it brings no new task). No held-out image is the image of any train record (near-copies "
        "included) and no held-out text-only question is a train question; test and validation share "
        "nothing either.",
        "",
        "## Provenance fields",
        "",
        "`generator`, `stream` (`messy`), `dataset`, `split`, `seed`, `defect` (null or one of "
        + ", ".join(f"`{d}`" for d in DEFECTS) + "), `group` (copy group: a copied record and its "
        "near-copies share it), `true_answer`, `image_of` (id of the earlier record whose image this record "
        "shows: reused, swapped in or unrelated), `wording` (which wording of the task's question), `truth` "
        "(the content's key and ground truth). Defect flags are for the `oracle` yardstick only: no selector "
        "reads them.",
        "",
        "## License",
        "",
        "Mixed: generated records are Apache-2.0 (this project's code); easy-vqa images are MIT; digit images "
        "are CC BY 4.0 (see the clean stream's cards).",
        "",
    ]
    return "\n".join(front + body)
