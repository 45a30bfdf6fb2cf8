"""Write the built-in stream to disk in LLaVA JSON format, with data cards.

Layout of ``out``::

    stream.json                 manifest: datasets in arrival order, paths, metric
    <name>/train.json           JSON array of LLaVA records (duplicates and noise mixed in)
    <name>/test.json            clean held-out split
    <name>/val.json             clean validation split (only with ``held_out: val``, which the
                                manifest then offers as the dataset's test split)
    <name>/images/<id>.png      one PNG per record that has an image
    <name>/README.md            data card (same text as data_cards/<name>.md at the same scale)

The same seed gives byte-identical files: every random draw comes from a
generator seeded by (seed, dataset name, purpose), PNGs carry no timestamps and
JSON is written with sorted keys.
"""
from __future__ import annotations

import argparse
import hashlib
import tempfile
import shutil
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from lifelong.config import load_config
from lifelong.data.stream import draw
from lifelong.data.stream.cards import render_card
from lifelong.data.stream.config import StreamConfig, corruption_counts
from lifelong.data.stream.files import MANIFEST, DatasetInfo, llava_record, write_json
from lifelong.data.stream.generators import DatasetSpec, Item, get_spec

GENERATOR = "lifelong.data.stream"
# Purposes of the seeded generators of one dataset (the last entropy word).
_TEST, _TRAIN, _CORRUPT, _VAL = 0, 1, 2, 3


def _rng(seed: int, name: str, purpose: int) -> np.random.Generator:
    # crc32 rather than hash(): stable across processes and Python versions.
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8")), purpose])


def compose_train(
    spec: DatasetSpec, originals: list[Item], n_dup: int, n_mis: int, n_ung: int, rng: np.random.Generator, cfg: StreamConfig
) -> list[tuple[Item, dict, int | None]]:
    """Mix near-duplicates and noise into ``originals``, shuffled.

    Returns ``(item, provenance extras, index of the duplicated entry or None)``
    per record, where the index points into the returned list. Mislabeled and
    ungrounded records are distinct originals; duplicates copy clean originals.
    """
    n_base = len(originals)
    perm = rng.permutation(n_base)
    mislabeled, ungrounded, clean = perm[:n_mis], perm[n_mis : n_mis + n_ung], perm[n_mis + n_ung :]
    if n_dup > len(clean):
        raise ValueError(f"{spec.name}: {n_dup} near-duplicates asked for but only {len(clean)} clean samples")
    entries: list[tuple[Item, dict, int | None]] = [(it, {"noise": None}, None) for it in originals]
    for i in mislabeled:
        it = originals[i]
        wrong = spec.wrong_answer(it, rng, cfg)
        entries[i] = (replace(it, answer=wrong), {"noise": "mislabeled", "true_answer": it.answer}, None)
    for i in ungrounded:
        it = originals[i]
        noise = draw.uniform_noise(cfg.image_size, rng)
        entries[i] = (replace(it, image=noise), {"noise": "ungrounded", "image_replaced_by": "uniform_noise"}, None)
    for src in rng.choice(clean, size=n_dup, replace=False):
        dup, extra = spec.jitter(originals[src], rng, cfg)
        entries.append((dup, {"noise": None, **extra}, int(src)))
    order = rng.permutation(len(entries))
    where = {int(old): new for new, old in enumerate(order)}
    return [(entries[o][0], entries[o][1], None if entries[o][2] is None else where[entries[o][2]]) for o in order]


def _write_split(
    spec: DatasetSpec, split: str, entries: list[tuple[Item, dict, int | None]], root: Path, seed: int
) -> list[dict]:
    """Write images and return the LLaVA records of one split."""
    ids = [f"{spec.name}-{split}-{i:05d}" for i in range(len(entries))]
    records = []
    for rid, (item, extra, dup_of) in zip(ids, entries):
        provenance = {
            "generator": GENERATOR,
            "dataset": spec.name,
            "split": split,
            "seed": seed,
            "duplicate_of": None if dup_of is None else ids[dup_of],
            # A mislabeled record's extras override this with the answer before corruption.
            "true_answer": item.answer,
            **item.truth,
            **extra,
        }
        records.append(llava_record(root, rid, spec.name, provenance, item.question, item.answer, item.image))
    return records


def prepare_dataset(name: str, out: Path, cfg: StreamConfig, scale: str, seed: int, order: int) -> DatasetInfo:
    """Generate one dataset of the stream into ``out/<name>/`` and return its manifest entry."""
    spec = get_spec(name)
    sizes = cfg.sizes(scale)
    n_dup, n_mis, n_ung = corruption_counts(cfg, sizes.train, spec.has_images)
    root = out / name
    # Remove only what this function writes, so a re-run at another scale leaves no stale images.
    shutil.rmtree(root / "images", ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    if spec.has_images:
        (root / "images").mkdir()

    test_items = spec.make("test", sizes.test, _rng(seed, name, _TEST), cfg, set())
    originals = spec.make("train", sizes.train - n_dup, _rng(seed, name, _TRAIN), cfg, {it.key for it in test_items})
    train = compose_train(spec, originals, n_dup, n_mis, n_ung, _rng(seed, name, _CORRUPT), cfg)
    test = [(it, {"noise": None}, None) for it in test_items]

    write_json(root / "test.json", _write_split(spec, "test", test, root, seed))
    write_json(root / "train.json", _write_split(spec, "train", train, root, seed))
    if cfg.held_out == "val":
        # Drawn last, from its own generator, so train and test are the records held_out test writes.
        used = {it.key for it in test_items} | {it.key for it in originals}
        val = spec.make("val", sizes.test, _rng(seed, name, _VAL), cfg, used)
        clean = [(it, {"noise": None}, None) for it in val]
        write_json(root / "val.json", _write_split(spec, "val", clean, root, seed))
    (root / "README.md").write_text(render_card(spec, cfg, scale), encoding="utf-8")
    return DatasetInfo(
        name=name,
        order=order,
        task=name,
        skill=spec.skill,
        metric=spec.metric,
        has_images=spec.has_images,
        train=f"{name}/train.json",
        test=f"{name}/{cfg.held_out}.json",
        card=f"{name}/README.md",
        n_train=sizes.train,
        n_test=sizes.test,  # make gives exactly the count asked for, val as test
        n_duplicates=n_dup,
        n_mislabeled=n_mis,
        n_ungrounded=n_ung,
    )


def prepare_stream(
    out: Path, scale: str = "small", seed: int = 0, datasets: list[str] | None = None, cfg: StreamConfig | None = None
) -> list[DatasetInfo]:
    """Write the stream's datasets (default: ``cfg.order``, or every messy dataset) to ``out``
    and the manifest ``out/stream.json``.

    Returns the manifest entries in arrival order. The clean stream's datasets
    are generated independently, so a subset gives the same files as the full
    stream; the messy stream is composed whole (its datasets share images and
    held-out splits) and a subset writes some of it.
    """
    cfg = cfg or StreamConfig()
    cfg.sizes(scale)  # fail early on an unknown scale
    out = Path(out)
    if cfg.stream == "messy":
        from lifelong.data.stream.messy.prepare import prepare_messy

        out.mkdir(parents=True, exist_ok=True)
        infos = prepare_messy(out, scale, seed, datasets, cfg)
    else:
        names = list(datasets) if datasets is not None else list(cfg.order)
        for n in names:
            get_spec(n)
        out.mkdir(parents=True, exist_ok=True)
        infos = [prepare_dataset(n, out, cfg, scale, seed, i) for i, n in enumerate(names)]
    manifest = {
        "format": "llava_json",
        "generator": GENERATOR,
        "scale": scale,
        "seed": seed,
        **({"stream": cfg.stream} if cfg.stream != "clean" else {}),
        "datasets": [i.manifest_entry() for i in infos],
    }
    write_json(out / MANIFEST, manifest)
    return infos


def content_digest(out: Path) -> str:
    """sha256 (hex) of a prepared stream's data: every file's relative path and bytes
    except the data cards (``*.md``), whose measured ceilings change without the data."""
    out = Path(out)
    h = hashlib.sha256()
    files = {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file() and p.suffix != ".md"}
    for rel in sorted(files):
        h.update(rel.encode() + b"\0")
        h.update(hashlib.sha256(files[rel].read_bytes()).digest())
    return h.hexdigest()


def stream_digest(scale: str, seed: int = 0, cfg: StreamConfig | None = None) -> str:
    """``content_digest`` of the stream ``prepare_stream(.., scale, seed, cfg=cfg)`` writes:
    equal digests = the same data, whatever code or settings produced it (a few seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        prepare_stream(Path(tmp), scale, seed, cfg=cfg)
        return content_digest(Path(tmp))


def main(argv: list[str] | None = None) -> int:
    """``lifelong data prepare``: write the built-in stream (or only the data cards)."""
    p = argparse.ArgumentParser(prog="lifelong data prepare", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--scale", default=None, help="size preset: small (default) or full (default with --cards-only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--datasets", default=None, help="comma-separated dataset names (default: the configured order)")
    p.add_argument("--config", type=Path, default=None, help="YAML file with StreamConfig fields")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--cards-only", action="store_true", help="write only <out>/<name>.md data cards (for data_cards/)")
    args = p.parse_args(argv)
    cfg = load_config(StreamConfig, args.config, args.overrides)
    names = args.datasets.split(",") if args.datasets else None
    if args.cards_only:
        from lifelong.data.stream.cards import write_cards
        from lifelong.data.stream.messy.prepare import write_messy_cards

        if cfg.stream == "messy":  # composed whole: every dataset's card
            paths = write_messy_cards(args.out, cfg, args.scale or "full", args.seed)
        else:
            paths = write_cards(args.out, cfg, args.scale or "full", names)
        for path in paths:
            print(path)
        return 0
    for info in prepare_stream(args.out, args.scale or "small", args.seed, names, cfg):
        print(
            f"{info.order}: {info.name:13s} train {info.n_train} (dup {info.n_duplicates}, "
            f"mislabeled {info.n_mislabeled}, ungrounded {info.n_ungrounded}), test {info.n_test}"
        )
    print(f"wrote {Path(args.out) / MANIFEST}")
    return 0
