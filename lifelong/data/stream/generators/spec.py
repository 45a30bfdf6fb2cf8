"""The registry of the built-in stream's datasets: ``Item``, ``DatasetSpec``, ``register``.

A generator is pure: given a split, a count, a seeded ``numpy`` generator and
the config, it returns ``Item``s (question, answer, image array, ground truth).
Mixing in duplicates and noise, and writing files, happen in ``prepare``.
Adding a dataset is one generator function and one ``register`` call, in the
module of its kind (``vqa``, ``scenes``, ``text``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from lifelong.data.stream import draw
from lifelong.data.stream.config import StreamConfig


@dataclass
class Item:
    """One clean question/answer pair before it becomes a LLaVA record.

    ``key`` identifies the content (unique inside a split, and train never
    repeats a test key); ``image`` is ``(H, W, 3)`` uint8 or None (text-only);
    ``truth`` holds the ground-truth fields that go into the provenance.
    """

    key: str
    question: str
    answer: str
    image: np.ndarray | None
    truth: dict = field(default_factory=dict)


# make(split, n, rng, cfg, exclude_keys) -> exactly n Items with unique keys not in exclude_keys
MakeFn = Callable[[str, int, np.random.Generator, StreamConfig, set], list[Item]]


@dataclass(frozen=True)
class CardInfo:
    """What a dataset card says beyond sizes and rates."""

    pretty_name: str
    license: str
    license_note: str
    task_categories: tuple[str, ...]
    source_datasets: tuple[str, ...]
    generation: str
    answers: str


@dataclass(frozen=True)
class DatasetSpec:
    """A built-in dataset: its generator, how to corrupt and jitter a sample, its card."""

    name: str
    skill: str
    make: MakeFn
    wrong_answer: Callable[[Item, np.random.Generator, StreamConfig], str]
    jitter: Callable[[Item, np.random.Generator, StreamConfig], tuple[Item, dict]]
    has_images: bool
    card: CardInfo
    metric: str = "exact_match"


DATASETS: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    if spec.name in DATASETS:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    DATASETS[spec.name] = spec
    return spec


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown stream dataset {name!r} (known: {', '.join(sorted(DATASETS))})") from None


def _collect(n: int, exclude: set, propose: Callable[[], Item | None], what: str, max_tries: int) -> list[Item]:
    """Call ``propose`` until ``n`` items with new keys are found (None = rejected proposal)."""
    items: list[Item] = []
    seen = set(exclude)
    for _ in range(max_tries):
        if len(items) == n:
            break
        item = propose()
        if item is None or item.key in seen:
            continue
        seen.add(item.key)
        items.append(item)
    if len(items) < n:
        raise ValueError(f"{what}: could only make {len(items)} distinct samples of the {n} asked for")
    return items


def _other(choices: list[str] | tuple[str, ...], current: str, rng: np.random.Generator) -> str:
    """A uniformly drawn element of ``choices`` different from ``current``."""
    rest = [c for c in choices if c != current]
    return rest[int(rng.integers(len(rest)))]


def image_jitter(item: Item, rng: np.random.Generator, cfg: StreamConfig) -> tuple[Item, dict]:
    """Near-duplicate: the image shifted by ``cfg.jitter_px`` along one or both axes."""
    p = cfg.jitter_px
    shifts = [(dy, dx) for dy in (-p, 0, p) for dx in (-p, 0, p) if (dy, dx) != (0, 0)]
    dy, dx = shifts[int(rng.integers(len(shifts)))]
    return replace(item, image=draw.shift(item.image, dy, dx)), {"jitter": {"shift_px": [dy, dx]}}
