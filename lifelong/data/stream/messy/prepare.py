"""Write the ``messy`` stream to disk: LLaVA JSON, PNG images, data cards, manifest.

Same layout as the clean stream (``lifelong/data/stream/prepare.py``), plus a
``val.json`` per dataset. Held-out splits are per task: the test and
validation questions of a task sit in the folder of the first written dataset
that teaches it (a dataset that brings no new task has empty ones).
"""
from __future__ import annotations

from pathlib import Path

from lifelong.data.stream.config import StreamConfig
from lifelong.data.stream.files import DatasetInfo, llava_record, write_json
from lifelong.data.stream.messy.cards import render_card
from lifelong.data.stream.messy.compose import MESSY_DATASETS, Dataset, Record, compose, rng_for

# Purpose of the generator that orders a dataset's records (compose uses 0).
_ORDER = 1


def order_records(datasets: list[Dataset], seed: int) -> None:
    """Shuffle each dataset's train records (seeded) and give every record its id, so that a
    record can name the earlier one whose image it shows, whichever datasets are written."""
    for ds in datasets:
        perm = rng_for(seed, ds.name, _ORDER).permutation(len(ds.records))
        ds.records = [ds.records[int(i)] for i in perm]
        for i, r in enumerate(ds.records):
            r.id = f"{ds.name}-train-{i:05d}"


def record_json(rec: Record, dataset: str, split: str, seed: int, root: Path) -> dict:
    """The LLaVA record of ``rec`` (its image written under ``root``)."""
    provenance = {
        "generator": "lifelong.data.stream",
        "stream": "messy",
        "dataset": dataset,
        "split": split,
        "seed": seed,
        "defect": rec.defect,
        "group": None if rec.group is None else f"{dataset}/g{rec.group:04d}",
        "true_answer": rec.true_answer,
        "image_of": None if rec.image_of is None else rec.image_of.id,
        "wording": rec.wording,
        "truth": {"key": rec.content.key, **rec.content.truth},
    }
    return llava_record(root, rec.id, rec.task, provenance, rec.question, rec.answer, rec.image)


def prepare_messy(out: Path, scale: str, seed: int, datasets: list[str] | None, cfg: StreamConfig) -> list:
    """Write the messy stream's ``datasets`` (default: all, in arrival order) to ``out``;
    returns their manifest entries (``DatasetInfo``)."""
    import shutil


    names = list(datasets) if datasets is not None else list(MESSY_DATASETS)
    unknown = [n for n in names if n not in MESSY_DATASETS]
    if unknown:
        raise KeyError(f"unknown messy dataset(s) {unknown} (known: {', '.join(MESSY_DATASETS)})")
    composed, held_out = compose(cfg, scale, seed)
    order_records(composed, seed)
    by_name = {d.name: d for d in composed}
    first: dict[str, str] = {}  # task -> the written dataset that holds its held-out splits
    for n in names:
        for task in MESSY_DATASETS[n][0]:
            first.setdefault(task, n)
    infos = []
    for i, name in enumerate(names):
        ds = by_name[name]
        root = out / name
        shutil.rmtree(root / "images", ignore_errors=True)
        (root / "images").mkdir(parents=True)
        files = {}
        for split in ("test", "val"):
            recs = [r for task in MESSY_DATASETS[name][0] if first[task] == name for r in held_out[split][task]]
            for j, r in enumerate(recs):
                r.id = f"{name}-{split}-{j:05d}"
            files[split] = [record_json(r, name, split, seed, root) for r in recs]
            write_json(root / f"{split}.json", files[split])
        write_json(root / "train.json", [record_json(r, name, "train", seed, root) for r in ds.records])
        (root / "README.md").write_text(render_card(ds, cfg, scale), encoding="utf-8")
        defects = [r.defect for r in ds.records]
        infos.append(DatasetInfo(
            name=name,
            order=i,
            task=",".join(MESSY_DATASETS[name][0]),
            skill=ds.summary,
            metric="exact_match",
            has_images=any(r.image is not None for r in ds.records),
            train=f"{name}/train.json",
            test=f"{name}/{cfg.messy.held_out}.json",
            card=f"{name}/README.md",
            n_train=len(ds.records),
            n_test=len(files[cfg.messy.held_out]),
            n_duplicates=defects.count("near_copy"),
            n_mislabeled=defects.count("wrong_label"),
            n_ungrounded=defects.count("swapped_image") + defects.count("irrelevant_image"),
            val=f"{name}/val.json",
        ))
    return infos


def write_messy_cards(out_dir: Path, cfg: StreamConfig | None = None, scale: str = "full", seed: int = 0) -> list[Path]:
    """Write ``<out_dir>/<name>.md`` for every messy dataset, as composed at ``scale`` with ``seed``."""
    cfg = cfg or StreamConfig(stream="messy")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in compose(cfg, scale, seed)[0]:
        path = out_dir / f"{ds.name}.md"
        path.write_text(render_card(ds, cfg, scale), encoding="utf-8")
        paths.append(path)
    return paths

