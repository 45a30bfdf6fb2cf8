"""The files of a prepared built-in stream: its manifest (``stream.json``) and the writers of its
records and images, shared by every stream's preparation (``prepare.py``, ``messy/prepare.py``).

Writers are deterministic: the same data gives the same bytes, so a stream's digest is a function
of its generators and seed only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lifelong.data.sample import IMAGE_TOKEN

MANIFEST = "stream.json"


@dataclass
class DatasetInfo:
    """One prepared dataset as listed in ``stream.json`` (paths relative to ``out``)."""

    name: str
    order: int
    task: str
    skill: str
    metric: str
    has_images: bool
    train: str
    test: str
    card: str
    n_train: int
    n_test: int
    n_duplicates: int
    n_mislabeled: int
    n_ungrounded: int
    # The messy stream's validation split (the clean stream carves one from train instead).
    val: str | None = None

    def manifest_entry(self) -> dict:
        """The entry as ``stream.json`` lists it (``val`` only where there is one)."""
        return {k: v for k, v in vars(self).items() if not (k == "val" and v is None)}


def write_png(path: Path, image: np.ndarray) -> None:
    # Fixed compression level and no metadata chunks: same pixels -> same bytes.
    Image.fromarray(image, "RGB").save(path, format="PNG", compress_level=6)


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=1) + "\n", encoding="utf-8")


def llava_record(root: Path, rid: str, task: str, provenance: dict, question: str, answer: str,
                 image: np.ndarray | None) -> dict:
    """One single-turn LLaVA record; its image, if any, written to ``root/images/<rid>.png``."""
    record = {"id": rid, "task": task, "provenance": provenance}
    human = question
    if image is not None:
        rel = f"images/{rid}.png"
        write_png(root / rel, image)
        record["image"] = rel
        human = f"{IMAGE_TOKEN}\n{human}"
    record["conversations"] = [{"from": "human", "value": human}, {"from": "gpt", "value": answer}]
    return record


def read_manifest(out: Path) -> list[DatasetInfo]:
    """The datasets of a prepared stream, in arrival order."""
    data = json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8"))
    return [DatasetInfo(**d) for d in data["datasets"]]
