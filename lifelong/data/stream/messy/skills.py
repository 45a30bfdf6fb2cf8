"""The skills of the ``messy`` stream: where their contents come from and how they are asked.

A skill is a task: its name is the ``task`` label of its records and the
column it is evaluated in, the same name as the clean stream's dataset of that
skill. Only skills the default CPU model learns on the clean stream are used
(``lifelong/data/stream/ceilings.json``: spatial and size do not learn).

A *content* is what a question is about (an image, or a word or a pair of
numbers for text-only skills), an ``Item`` whose ``key`` names it. Every skill
has several wordings of its question; ``ask(item, w)`` is wording ``w``.
Contents of the train, validation and test splits are disjoint: the test
split comes from sources no train record uses (easy-vqa's test images, the
held-out words), validation and train from the rest, excluding each other.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lifelong.data.stream.config import StreamConfig
from lifelong.data.stream.generators.scenes import make_counting, make_position
from lifelong.data.stream.generators.spec import Item, get_spec
from lifelong.data.stream.generators.text import CATEGORIES, CATEGORY_TEMPLATES, COMPARE_MAX, category_question
from lifelong.data.stream.generators.vqa import (
    EVQA_COLORS,
    EVQA_SHAPES,
    _digits,
    _easy_vqa_split,
    _load_rgb,
    digit_image,
)


@dataclass(frozen=True)
class Skill:
    """One skill: ``draw(split, n, rng, cfg, exclude)`` gives ``n`` contents with keys not in
    ``exclude`` (``split``: ``train``, ``val`` or ``test``); ``ask(item, w)`` is wording ``w`` (of
    ``n_wordings``) of the question about a content. Wrong answers are the clean
    stream's (``DatasetSpec.wrong_answer`` of the dataset of the same name)."""

    name: str
    has_image: bool
    draw: Callable[[str, int, np.random.Generator, StreamConfig, set], list[Item]]
    n_wordings: int
    ask: Callable[[Item, int], str]

    def wrong(self, item: Item, rng: np.random.Generator, cfg: StreamConfig) -> str:
        """Another answer of the same kind."""
        return get_spec(self.name).wrong_answer(item, rng, cfg)


def templated(*wordings: str) -> tuple[int, Callable[[Item, int], str]]:
    """(n_wordings, ask) for question templates filled from an item's ``truth``."""
    return len(wordings), lambda item, w: wordings[w].format(**item.truth)


def _pick(candidates: list[str], n: int, rng: np.random.Generator, exclude: set, what: str) -> list[str]:
    free = [c for c in candidates if c not in exclude]
    if n > len(free):
        raise ValueError(f"messy stream: {what} has {len(free)} unused contents, {n} asked for")
    return [free[int(i)] for i in rng.choice(len(free), size=n, replace=False)]


# ------------------------------------------------------------------- easy-vqa

@functools.lru_cache(maxsize=2)
def easy_vqa_images(source_split: str) -> dict[str, dict]:
    """easy-vqa images of the package's ``source_split``: key -> {image_id, path, shape, color},
    the shape and colour read from the package's own answers about the image."""
    texts, answers, image_ids, paths = _easy_vqa_split(source_split)
    out: dict[str, dict] = {}
    for a, im in zip(answers, image_ids):
        info = out.setdefault(f"easy_vqa/{source_split}/{im}", {"image_id": im, "path": paths[im]})
        if a in EVQA_SHAPES:
            info["shape"] = a
        elif a in EVQA_COLORS:
            info["color"] = a
    return {k: v for k, v in sorted(out.items()) if "shape" in v and "color" in v}


def easy_vqa_item(key: str, answer_field: str, cfg: StreamConfig) -> Item:
    """The item of easy-vqa image ``key`` whose answer is its ``shape`` or ``color``."""
    source_split = key.split("/")[1]
    info = easy_vqa_images(source_split)[key]
    truth = {"source": "easy_vqa", "source_split": source_split, "source_image_id": info["image_id"],
             "shape": info["shape"], "color": info["color"]}
    return Item(key, "", info[answer_field], _load_rgb(info["path"], cfg.image_size), truth)


def _easy_vqa_draw(answer_field: str):
    def draw(split, n, rng, cfg, exclude):
        # The package's test images for test only; validation and train share its train images.
        keys = list(easy_vqa_images("test" if split == "test" else "train"))
        return [easy_vqa_item(k, answer_field, cfg) for k in _pick(keys, n, rng, exclude, f"easy-vqa {split}")]

    return draw


# --------------------------------------------------------------------- digits

def _digits_draw(split, n, rng, cfg, exclude):
    images, targets = _digits()
    # Every third digit is reserved for the default model's stage-1 alignment (as in the clean stream).
    keys = [f"digits/{i}" for i in range(len(targets)) if i % 3 != 2]
    items = []
    for key in _pick(keys, n, rng, exclude, "digits"):
        i = int(key.split("/")[1])
        truth = {"source": "sklearn.datasets.load_digits", "source_index": i, "label": int(targets[i])}
        items.append(Item(key, "", str(int(targets[i])), digit_image(images[i], cfg.image_size), truth))
    return items


# ----------------------------------------------------------- generated scenes

def _position_draw(split, n, rng, cfg, exclude):
    # Generated scenes have no source split: the splits differ only by the keys they exclude.
    items = make_position(split, n, rng, cfg, exclude)
    for it in items:
        it.truth.update(color=it.truth["objects"][0]["color"], kind=it.truth["objects"][0]["kind"])
    return items


# ------------------------------------------------------------------ category

# Every fourth word of a kind is a test word, the next a validation word, the rest train words.
CATEGORY_SPLIT_EVERY = 4


def category_split_words(split: str) -> list[tuple[str, str]]:
    """(word, kind) pairs of ``split``: 10 test, 10 validation and 20 train words of each kind."""
    slot = {"test": (0,), "val": (1,)}.get(split, tuple(range(2, CATEGORY_SPLIT_EVERY)))
    return [(w, c) for c, words in CATEGORIES.items() for i, w in enumerate(words)
            if i % CATEGORY_SPLIT_EVERY in slot]


def _category_draw(split, n, rng, cfg, exclude):
    kinds = dict(category_split_words(split))
    keys = [f"category/{w}" for w in kinds]
    items = []
    for key in _pick(keys, n, rng, exclude, f"category {split} words"):
        word = key.split("/")[1]
        items.append(Item(key, "", kinds[word], None, {"word": word, "category": kinds[word]}))
    return items


# ------------------------------------------------------------------- compare

def _compare_draw(split, n, rng, cfg, exclude):
    # The key is the unordered pair, so a question and its swapped twin never sit in two splits.
    items, seen = [], set(exclude)
    for _ in range(50 * n + 100):
        if len(items) == n:
            break
        a, b = (int(v) for v in rng.choice(COMPARE_MAX + 1, size=2, replace=False))
        key = f"compare/{min(a, b)}/{max(a, b)}"
        if key not in seen:
            seen.add(key)
            items.append(Item(key, "", str(max(a, b)), None, {"a": a, "b": b}))
    if len(items) < n:
        raise ValueError(f"messy stream: compare could only make {len(items)} of {n} pairs")
    return items


# ------------------------------------------------------------------ registry

SKILLS: dict[str, Skill] = {s.name: s for s in (
    Skill("vqa_shape", True, _easy_vqa_draw("shape"), *templated(
        "What shape is in the image?", "What shape does the image contain?", "Which shape is shown?",
        "What is the shape in this picture?", "Name the shape in the image.")),
    Skill("vqa_color", True, _easy_vqa_draw("color"), *templated(
        "What color is the shape?", "What is the color of the shape?", "What color is the {shape}?",
        "Which color does the {shape} have?", "Name the color of the shape.")),
    Skill("digits", True, _digits_draw, *templated(
        "What digit is shown in the image?", "Which digit is this?", "What number is written in the image?",
        "Read the handwritten digit.", "What is the digit in the picture?")),
    Skill("counting", True, make_counting, *templated(
        "How many {kind}s are there in the image?", "Count the {kind}s in the image.",
        "What is the number of {kind}s in the picture?", "How many {kind}s can you see?",
        "Give the number of {kind}s shown.")),
    Skill("position", True, _position_draw, *templated(
        "In which corner of the image is the {color} {kind}?", "Which corner is the {color} {kind} in?",
        "Where is the {color} {kind}: top-left, top-right, bottom-left or bottom-right?",
        "Name the corner that holds the {color} {kind}.")),
    Skill("category", False, _category_draw, len(CATEGORY_TEMPLATES),
          lambda item, w: category_question(w, item.truth["word"])),
    Skill("compare", False, _compare_draw, *templated(
        "Which number is larger, {a} or {b}?", "Which is the bigger number: {a} or {b}?",
        "Of {a} and {b}, which is greater?", "What is the larger of {a} and {b}?")),
)}
