"""Pieces of a tiny two-round run directory built from the real pieces (tiny HF LLaVA, pool, stage files).

Round 1: dataset ``shapes`` arrives (tasks ``shape`` and ``color``); round 2:
dataset ``count``. Provenance marks near-duplicates (``duplicate_of``) and noise
(``noise``) as the built-in stream does. Adapters ``round_0`` (fresh), ``round_1``
and ``round_2`` differ: their LoRA and projector weights are perturbed with
seeded noise so that the adapter changes the logits.
"""
from __future__ import annotations

import io
import json

import numpy as np

from lifelong.data.pool import Pool
from lifelong.data.sample import Sample
from lifelong.models import LoraSettings, ModelConfig
from lifelong.models.config import tiny_model_config as tiny_config

RUN = "tinyrun"
ACCURACY = [[0.1, 0.2], [0.6, 0.3], [0.5, 0.7]]  # rows: before training, after round 1, after round 2


def tiny_model_config(cache_dir, family: str = "hf") -> ModelConfig:
    """The shared tiny model of ``family`` with this fixture's LoRA alpha and length (export logits depend on them)."""
    return tiny_config(cache_dir, family, lora=LoraSettings(rank=4, dropout=0.0), max_length=128)


def png(seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def make_sample(pool: Pool, sid: str, dataset: str, task: str, image_seed: int | None, dup_of=None, noise=None) -> Sample:
    images = [] if image_seed is None else [pool.put_blob(png(image_seed))]
    q = ("<image>\n" if images else "") + f"Question about {sid}?"
    return Sample(
        id=sid, dataset=dataset, task=task, split="train",
        conversation=[{"role": "user", "content": q}, {"role": "assistant", "content": f"answer {sid}"}],
        images=images, provenance={"duplicate_of": dup_of, "noise": noise},
    )


# id, dataset, task, image seed, duplicate_of, noise
SAMPLES = [
    ("s0", "shapes", "shape", 0, None, None),
    ("s1", "shapes", "shape", 1, None, None),
    ("s2", "shapes", "shape", 2, None, None),
    ("s3", "shapes", "color", 3, None, None),
    ("s4", "shapes", "shape", 4, "s1", None),
    ("s5", "shapes", "color", 5, None, "mislabeled"),
    ("c0", "count", "count", None, None, None),
    ("c1", "count", "count", None, None, None),
    ("c2", "count", "count", 6, None, "ungrounded"),
    ("c3", "count", "count", None, "c0", None),
]
SELECTED = {1: ["s0", "s1", "s4", "s5"], 2: ["s2", "c0", "c2", "c3", "s4"]}
PRUNED = {1: [], 2: [("s4", 0, 0.97), ("c3", 1, 0.95), ("s5", 0, 0.91)]}
CLUSTERS = {
    1: [{"id": 0, "size": 3, "share": 2, "expert": "el2n", "entropy": {"el2n": 1.5, "ppl": 1.0}},
        {"id": 1, "size": 3, "share": 2, "expert": "ppl", "entropy": {"el2n": 0.5, "ppl": 1.2}}],
    2: [{"id": 0, "size": 6, "share": 3, "expert": "ig", "entropy": {"ig": 2.0, "ppl": 1.0}},
        {"id": 1, "size": 4, "share": 2, "expert": "el2n", "entropy": {"el2n": 1.9, "ig": 1.1}}],
}
DATASETS = {1: "shapes", 2: "count"}


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def perturb(loaded, seed: int, scale: float = 0.02) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in loaded.trainable_parameters().values():
            p.add_(scale * torch.randn(p.shape, generator=g))
