"""Small image-question datasets as a user brings them: LLaVA JSON, messages JSONL/Parquet, save_to_disk.

Each sample is a solid-colour square (with a little seeded noise, so every
image is distinct) and the question "What colour is this square?"; the answer is
the colour's name. ``kind`` picks the colour set, so two datasets are two
different tasks.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {
    "warm": {"red": (220, 30, 30), "orange": (240, 140, 20), "yellow": (230, 220, 40)},
    "cool": {"blue": (30, 60, 220), "green": (30, 180, 60), "purple": (130, 40, 170)},
    "mono": {"black": (20, 20, 20), "grey": (128, 128, 128), "white": (235, 235, 235)},
}


def _records(root: Path, kind: str, split: str, n: int, seed: int) -> list[dict]:
    """(id, image path relative to root, question, answer) records; images written under ``root/images``."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    names = list(COLOURS[kind])
    out = []
    for i in range(n):
        colour = names[i % len(names)]
        arr = np.clip(np.array(COLOURS[kind][colour]) + rng.integers(-15, 16, (24, 24, 3)), 0, 255).astype(np.uint8)
        rel = f"images/{split}_{i}.png"
        Image.fromarray(arr).save(root / rel)
        out.append({"id": f"{split}{i}", "image": rel, "q": "What colour is this square?", "a": colour})
    return out


def write_llava(root: Path, kind: str = "warm", n_train: int = 12, n_test: int = 6, seed: int = 0) -> Path:
    """``root/train.json`` + ``root/test.json`` in LLaVA format."""
    for split, n in (("train", n_train), ("test", n_test)):
        recs = [{"id": r["id"], "image": r["image"],
                 "conversations": [{"from": "human", "value": "<image>\n" + r["q"]}, {"from": "gpt", "value": r["a"]}]}
                for r in _records(root, kind, split, n, seed + (split == "test"))]
        (root / f"{split}.json").write_text(json.dumps(recs))
    return root


def _messages(r: dict, parts: bool = True) -> dict:
    """A messages record; ``parts``: the user turn as typed content parts, else a string with ``<image>``."""
    user = [{"type": "image"}, {"type": "text", "text": r["q"]}] if parts else "<image>\n" + r["q"]
    return {"id": r["id"], "images": [r["image"]],
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": r["a"]}]}


def write_messages(root: Path, kind: str = "cool", n_train: int = 12, n_test: int = 6, seed: int = 0,
                   parquet: bool = False) -> Path:
    """``root/train.jsonl`` + ``root/test.jsonl`` (or ``.parquet``) in TRL / LLaMA-Factory messages format."""
    for split, n in (("train", n_train), ("test", n_test)):
        recs = [_messages(r, parts=not parquet) for r in _records(root, kind, split, n, seed + (split == "test"))]
        if parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(recs), root / f"{split}.parquet")
        else:
            (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return root


def write_hf(root: Path, kind: str = "cool", n_train: int = 12, n_test: int = 6, seed: int = 0) -> Path:
    """A ``DatasetDict`` with ``train`` and ``test`` splits saved with ``save_to_disk`` (images embedded)."""
    import datasets

    staging = root.parent / f".{root.name}-images"
    features = datasets.Features({
        "id": datasets.Value("string"),
        "images": datasets.Sequence(datasets.Image()),
        "messages": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
    })
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        rows = [{**_messages(r, parts=False), "images": [str(staging / r["image"])]}
                for r in _records(staging, kind, split, n, seed + (split == "test"))]
        splits[split] = datasets.Dataset.from_list(rows, features=features)
    datasets.DatasetDict(splits).save_to_disk(str(root))
    return root
