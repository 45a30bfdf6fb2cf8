"""The datasets of the built-in stream: one registered ``DatasetSpec`` each.

A generator is pure: given a split, a count, a seeded ``numpy`` generator and
the config, it returns ``Item``s (question, answer, image array, ground truth).
Mixing in duplicates and noise, and writing files, happen in ``prepare``.
Adding a dataset is one generator function and one ``register`` call.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
from PIL import Image

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


# --------------------------------------------------------------------- easy-vqa

EVQA_COLORS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
EVQA_SHAPES = ("circle", "rectangle", "triangle")
EVQA_YESNO = ("yes", "no")


@functools.lru_cache(maxsize=2)
def _easy_vqa_split(split: str) -> tuple[list[str], list[str], list[int], dict[int, str]]:
    import easy_vqa

    if split == "train":
        texts, answers, image_ids = easy_vqa.get_train_questions()
        paths = easy_vqa.get_train_image_paths()
    else:
        texts, answers, image_ids = easy_vqa.get_test_questions()
        paths = easy_vqa.get_test_image_paths()
    return texts, answers, image_ids, paths


def _load_rgb(path: str, size: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.NEAREST)
        return np.asarray(im, dtype=np.uint8).copy()


def _easy_vqa_maker(answer_space: tuple[str, ...], name: str) -> MakeFn:
    def make(split: str, n: int, rng: np.random.Generator, cfg: StreamConfig, exclude: set) -> list[Item]:
        texts, answers, image_ids, paths = _easy_vqa_split(split)
        # The package's own questions whose answer is of this skill, one per (image, question text).
        candidates, seen = [], set()
        for i, (t, a, im) in enumerate(zip(texts, answers, image_ids)):
            key = f"easy_vqa/{split}/{im}/{t}"
            if a in answer_space and key not in seen and key not in exclude:
                seen.add(key)
                candidates.append((i, key))
        if n > len(candidates):
            raise ValueError(f"{name}: easy-vqa {split} has {len(candidates)} such questions, {n} asked for")
        chosen = rng.choice(len(candidates), size=n, replace=False)
        items = []
        for c in chosen:
            i, key = candidates[int(c)]
            truth = {
                "source": "easy_vqa",
                "source_split": split,
                "source_index": i,
                "source_image_id": image_ids[i],
            }
            items.append(Item(key, texts[i], answers[i], _load_rgb(paths[image_ids[i]], cfg.image_size), truth))
        return items

    return make


def _easy_vqa_wrong(answer_space: tuple[str, ...]):
    return lambda item, rng, cfg: _other(answer_space, item.answer, rng)


_EVQA_CARD = dict(
    license="mit",
    license_note="Questions, answers and images come from the `easy-vqa` package (MIT License, Victor Zhou).",
    task_categories=("visual-question-answering",),
    source_datasets=("extended|easy-vqa",),
)

for _name, _space, _skill in (
    ("vqa_shape", EVQA_SHAPES, "name the shape in a simple synthetic image"),
    ("vqa_color", EVQA_COLORS, "name the colour of the shape in a simple synthetic image"),
    ("vqa_yesno", EVQA_YESNO, "answer yes/no questions about the shape and colour in a simple synthetic image"),
):
    register(
        DatasetSpec(
            name=_name,
            skill=_skill,
            make=_easy_vqa_maker(_space, _name),
            wrong_answer=_easy_vqa_wrong(_space),
            jitter=image_jitter,
            has_images=True,
            card=CardInfo(
                pretty_name=f"easy-VQA, {_name.split('_')[1]} questions",
                generation=(
                    "Drawn without replacement from the `easy-vqa` package's own split of the same name "
                    f"(`get_{{split}}_questions()`), keeping the questions whose answer is one of: "
                    f"{', '.join(_space)}. Question text and answer are the package's, unchanged; the "
                    "package image is re-encoded as PNG."
                ),
                answers=", ".join(f"`{a}`" for a in _space),
                **_EVQA_CARD,
            ),
        )
    )


# ----------------------------------------------------------------------- digits

DIGIT_QUESTION = "What digit is shown in the image?"


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target  # (1797, 8, 8) in [0, 16], (1797,)


def digit_image(pixels: np.ndarray, size: int) -> np.ndarray:
    """An 8x8 sklearn digit (ink 0..16) as dark ink on white, enlarged to ``size`` by pixel repetition."""
    gray = (255 - np.rint(pixels * (255 / 16))).astype(np.uint8)  # (8, 8)
    im = Image.fromarray(gray, "L").resize((size, size), Image.NEAREST).convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy()  # (size, size, 3)


def make_digits(split: str, n: int, rng: np.random.Generator, cfg: StreamConfig, exclude: set) -> list[Item]:
    images, targets = _digits()
    # Every third digit is reserved for the stage-1 alignment of the default model's projector
    # (lifelong.models.align), so no digit the stream uses was seen there.
    free = [i for i in range(len(targets)) if i % 3 != 2 and f"digits/{i}" not in exclude]
    if n > len(free):
        raise ValueError(f"digits: {len(free)} unused digits left, {n} asked for")
    chosen = rng.choice(len(free), size=n, replace=False)
    items = []
    for c in chosen:
        i = free[int(c)]
        truth = {"source": "sklearn.datasets.load_digits", "source_index": i, "label": int(targets[i])}
        items.append(Item(f"digits/{i}", DIGIT_QUESTION, str(int(targets[i])), digit_image(images[i], cfg.image_size), truth))
    return items


register(
    DatasetSpec(
        name="digits",
        skill="recognise a handwritten digit",
        make=make_digits,
        wrong_answer=lambda item, rng, cfg: _other([str(d) for d in range(10)], item.answer, rng),
        jitter=image_jitter,
        has_images=True,
        card=CardInfo(
            pretty_name="Handwritten digits (scikit-learn)",
            license="cc-by-4.0",
            license_note=(
                "Images are scikit-learn's copy of the UCI Optical Recognition of Handwritten Digits data "
                "set (Alpaydin and Kaynak, 1998; CC BY 4.0), shipped inside the `scikit-learn` package."
            ),
            task_categories=("visual-question-answering", "image-classification"),
            source_datasets=("extended|other-uci-optical-recognition-of-handwritten-digits",),
            generation=(
                "Each sample is one of the 1,797 8x8 digits of `sklearn.datasets.load_digits()` whose index "
                "is not 2 mod 3 (those are reserved for the stage-1 alignment of the default model's "
                "projector); the test split is drawn first and the train split from the remaining digits, "
                "so no digit is in both. The ink values 0..16 become grey levels (dark ink on white) and the image is "
                "enlarged to the configured size by pixel repetition. The answer is the digit's label."
            ),
            answers="`0` to `9`",
        ),
    )
)


# --------------------------------------------------------------------- counting

def _place(rng: np.random.Generator, size: int, radii: list[int], gap: int, margin: int, tries: int = 200):
    """Centres for boxes of half-sides ``radii``, each ``margin`` px inside the image and
    ``gap`` px apart (Chebyshev distance between boxes); None if no fit in ``tries`` draws."""
    centres: list[tuple[int, int]] = []
    for r in radii:
        for _ in range(tries):
            cx, cy = (int(v) for v in rng.integers(r + margin, size - r - margin, size=2))
            if all(max(abs(cx - x), abs(cy - y)) >= r + q + gap for (x, y), q in zip(centres, radii)):
                centres.append((cx, cy))
                break
        else:
            return None
    return centres


# Object sizes and spacing for the generated scenes, in pixels: half-sides
# small enough that six objects fit in 64x64, boxes kept ``GAP`` apart so
# objects never touch, and ``MARGIN`` from the border so a 1-px jitter never
# pushes an object off the image.
COUNT_RADII = (4, 6)
SPATIAL_RADII = (5, 7)
GAP = 3
MARGIN = 2


def make_counting(split: str, n: int, rng: np.random.Generator, cfg: StreamConfig, exclude: set) -> list[Item]:
    colors = list(draw.PALETTE)

    def propose() -> Item | None:
        count = int(rng.integers(1, cfg.max_count + 1))
        kind = draw.SHAPES[int(rng.integers(len(draw.SHAPES)))]
        radii = [int(r) for r in rng.integers(COUNT_RADII[0], COUNT_RADII[1] + 1, size=count)]
        centres = _place(rng, cfg.image_size, radii, GAP, MARGIN)
        if centres is None:
            return None
        objects = [
            {"kind": kind, "cx": cx, "cy": cy, "r": r, "color": colors[int(rng.integers(len(colors)))]}
            for (cx, cy), r in zip(centres, radii)
        ]
        truth = {"count": count, "kind": kind, "objects": objects}
        key = "counting/" + json.dumps(objects, sort_keys=True)
        question = f"How many {kind}s are there in the image?"
        return Item(key, question, str(count), draw.render_shapes(cfg.image_size, objects), truth)

    return _collect(n, exclude, propose, "counting", max_tries=50 * n + 100)


register(
    DatasetSpec(
        name="counting",
        skill="count the objects in an image",
        make=make_counting,
        wrong_answer=lambda item, rng, cfg: _other([str(c) for c in range(1, cfg.max_count + 1)], item.answer, rng),
        jitter=image_jitter,
        has_images=True,
        card=CardInfo(
            pretty_name="Counting shapes (generated)",
            license="apache-2.0",
            license_note="Generated by this project's code (Apache-2.0); no third-party content.",
            task_categories=("visual-question-answering",),
            source_datasets=("original",),
            generation=(
                "A white square canvas with 1..{max_count} filled shapes of one kind (circle, square or "
                "triangle), each of a random palette colour, half-side 4-6 px, drawn with PIL without "
                "anti-aliasing. Objects never touch (their boxes are at least 3 px apart) and stay 2 px "
                "inside the border. The answer is the number of shapes drawn, written as digits."
            ),
            answers="`1` to `{max_count}` (digits)",
        ),
    )
)


# ---------------------------------------------------------------------- spatial

RELATIONS = ("left", "right", "above", "below")
# A scene is kept only if the centres' offset along one axis is at least this
# many times the offset along the other: with 3 the relation stays clear even
# measured from pixel centroids (a triangle's centroid sits r/3 below its box
# centre).
RELATION_RATIO = 3


def relation_of(ax: float, ay: float, bx: float, by: float) -> str | None:
    """Where A is relative to B (image coordinates, y grows downwards), or None
    when the dominant axis is less than ``RELATION_RATIO`` times the other one."""
    dx, dy = ax - bx, ay - by
    if abs(dx) >= RELATION_RATIO * abs(dy):
        return "left" if dx < 0 else "right"
    if abs(dy) >= RELATION_RATIO * abs(dx):
        return "above" if dy < 0 else "below"
    return None


def across_midline(rel: str, ax: int, ay: int, bx: int, by: int, size: int) -> bool:
    """Whether the two centres lie on opposite sides of the image's midline along the
    relation's axis (the vertical midline for left/right, the horizontal one for
    above/below), so that even a 2x2 pooled grid puts them in different cells."""
    half = size / 2
    if rel in ("left", "right"):
        return (ax < half) != (bx < half)
    return (ay < half) != (by < half)


def make_spatial(split: str, n: int, rng: np.random.Generator, cfg: StreamConfig, exclude: set) -> list[Item]:
    colors = list(draw.PALETTE)

    def propose() -> Item | None:
        ca, cb = (colors[int(i)] for i in rng.choice(len(colors), size=2, replace=False))
        ka, kb = (draw.SHAPES[int(i)] for i in rng.integers(len(draw.SHAPES), size=2))
        radii = [int(r) for r in rng.integers(SPATIAL_RADII[0], SPATIAL_RADII[1] + 1, size=2)]
        centres = _place(rng, cfg.image_size, radii, GAP, MARGIN)
        if centres is None:
            return None
        (ax, ay), (bx, by) = centres
        rel = relation_of(ax, ay, bx, by)
        if rel is None or not across_midline(rel, ax, ay, bx, by, cfg.image_size):
            return None
        objects = [
            {"kind": ka, "cx": ax, "cy": ay, "r": radii[0], "color": ca},
            {"kind": kb, "cx": bx, "cy": by, "r": radii[1], "color": cb},
        ]
        truth = {"relation": rel, "objects": objects}
        question = f"Is the {ca} {ka} left of, right of, above or below the {cb} {kb}?"
        key = "spatial/" + json.dumps(objects, sort_keys=True)
        return Item(key, question, rel, draw.render_shapes(cfg.image_size, objects), truth)

    return _collect(n, exclude, propose, "spatial", max_tries=100 * n + 100)


register(
    DatasetSpec(
        name="spatial",
        skill="tell where one object is relative to another",
        make=make_spatial,
        wrong_answer=lambda item, rng, cfg: _other(RELATIONS, item.answer, rng),
        jitter=image_jitter,
        has_images=True,
        card=CardInfo(
            pretty_name="Spatial relations (generated)",
            license="apache-2.0",
            license_note="Generated by this project's code (Apache-2.0); no third-party content.",
            task_categories=("visual-question-answering",),
            source_datasets=("original",),
            generation=(
                "A white square canvas with two filled shapes (circle, square or triangle) of two "
                "different palette colours, half-side 5-7 px, drawn with PIL without anti-aliasing, not "
                "touching. Placements are kept only when the offset between the centres along one axis "
                f"is at least {RELATION_RATIO} times the offset along the other and the two centres lie on "
                "opposite sides of the image's midline along that axis, so the relation is unambiguous and "
                "visible at a 2x2 grid. The answer is where the first-named object is relative to the second (y "
                "grows downwards: `above` means a smaller row)."
            ),
            answers="`left`, `right`, `above`, `below`",
        ),
    )
)


# ----------------------------------------------------------------- text reading

WORDS = (
    "cat", "dog", "sun", "map", "car", "box", "cup", "hat", "pen", "key",
    "bus", "egg", "fox", "ice", "jam", "kid", "leg", "net", "owl", "pig",
    "rug", "sea", "toy", "van", "web", "yak", "zip", "ant", "bee", "cow",
    "fish", "bird", "tree", "book", "door", "lamp", "moon", "star", "ship", "frog",
    "milk", "cake", "rain", "snow", "wind", "fire", "rock", "sand", "leaf", "ring",
    "apple", "bread", "chair", "cloud", "grape", "horse", "house", "lemon", "mouse", "plant",
    "river", "stone", "table", "tiger", "train", "water", "zebra", "clock", "piano", "shirt",
)
TEXT_QUESTION = "What word is written in the image?"
# Dark ink colours for text, and the lowest channel value of the light background.
TEXT_INKS = ("black", "blue", "red", "purple", "green")
TEXT_BG_MIN = 200
# Border kept free of text, in pixels (so a 1-px jitter never clips a letter).
TEXT_MARGIN = 2


def make_text_reading(split: str, n: int, rng: np.random.Generator, cfg: StreamConfig, exclude: set) -> list[Item]:
    size = cfg.image_size

    def propose() -> Item:
        word = WORDS[int(rng.integers(len(WORDS)))]
        w, h = draw.text_extent(word)
        scale = 2 if max(2 * w, 2 * h) <= size - 2 * TEXT_MARGIN else 1
        x = int(rng.integers(TEXT_MARGIN, size - TEXT_MARGIN - scale * w + 1))
        y = int(rng.integers(TEXT_MARGIN, size - TEXT_MARGIN - scale * h + 1))
        ink = TEXT_INKS[int(rng.integers(len(TEXT_INKS)))]
        bg = tuple(int(v) for v in rng.integers(TEXT_BG_MIN, 256, size=3))
        truth = {"word": word, "x": x, "y": y, "scale": scale, "ink": ink, "background": list(bg)}
        key = "text_reading/" + json.dumps(truth, sort_keys=True)
        image = draw.render_text(size, word, x, y, scale, draw.PALETTE[ink], bg)
        return Item(key, TEXT_QUESTION, word, image, truth)

    return _collect(n, exclude, propose, "text_reading", max_tries=20 * n + 100)


register(
    DatasetSpec(
        name="text_reading",
        skill="read a short word rendered in an image",
        make=make_text_reading,
        wrong_answer=lambda item, rng, cfg: _other(WORDS, item.answer, rng),
        jitter=image_jitter,
        has_images=True,
        card=CardInfo(
            pretty_name="Reading rendered words (generated)",
            license="apache-2.0",
            license_note=(
                "Generated by this project's code (Apache-2.0). The glyphs are Pillow's built-in bitmap "
                "font (`ImageFont.load_default_imagefont()`), so no font file is read and rendering does "
                "not depend on FreeType."
            ),
            task_categories=("visual-question-answering", "image-to-text"),
            source_datasets=("original",),
            generation=(
                f"A lower-case English word of 3-5 letters (a fixed list of {len(WORDS)} words) drawn in "
                "Pillow's built-in bitmap font, enlarged 2x by pixel repetition when it fits, in a dark "
                "palette colour at a random position on a random light background (every channel >= 200), "
                "2 px clear of the border. The answer is the word."
            ),
            answers=f"one of {len(WORDS)} lower-case words",
        ),
    )
)


# -------------------------------------------------------------------- text-only

LETTER_WORDS = WORDS + (
    "garden", "window", "pencil", "rabbit", "yellow", "orange", "planet", "bottle", "candle", "silver",
    "morning", "kitchen", "blanket", "picture", "monkey", "dragon", "island", "basket", "butter", "winter",
)

# (operator, first phrasing, reworded phrasing used for near-duplicates)
TEXT_TEMPLATES = {
    "add": ("What is {a} + {b}?", "What is {a} plus {b}?"),
    "sub": ("What is {a} - {b}?", "What is {a} minus {b}?"),
    "mul": ("What is {a} * {b}?", "What is {a} times {b}?"),
    "letters": ('How many letters are in the word "{w}"?', 'How many letters does the word "{w}" have?'),
}
# Operand ranges: sums and differences of 0..99, products of 2..12 (times tables).
ADD_SUB_MAX = 99
MUL_RANGE = (2, 12)


def text_only_answer(truth: dict) -> int:
    """The correct answer of a text-only question from its ground-truth fields."""
    op = truth["op"]
    if op == "letters":
        return len(truth["word"])
    a, b = truth["a"], truth["b"]
    return {"add": a + b, "sub": a - b, "mul": a * b}[op]


def _text_question(truth: dict, variant: int) -> str:
    return TEXT_TEMPLATES[truth["op"]][variant].format(a=truth.get("a"), b=truth.get("b"), w=truth.get("word"))


def make_text_only(split: str, n: int, rng: np.random.Generator, cfg: StreamConfig, exclude: set) -> list[Item]:
    ops = list(TEXT_TEMPLATES)

    def propose() -> Item:
        op = ops[int(rng.integers(len(ops)))]
        if op == "letters":
            truth = {"op": op, "word": LETTER_WORDS[int(rng.integers(len(LETTER_WORDS)))]}
        elif op == "mul":
            a, b = (int(v) for v in rng.integers(MUL_RANGE[0], MUL_RANGE[1] + 1, size=2))
            truth = {"op": op, "a": a, "b": b}
        else:
            a, b = (int(v) for v in rng.integers(0, ADD_SUB_MAX + 1, size=2))
            if op == "sub" and b > a:
                a, b = b, a
            truth = {"op": op, "a": a, "b": b}
        key = "text_only/" + json.dumps(truth, sort_keys=True)
        return Item(key, _text_question(truth, 0), str(text_only_answer(truth)), None, truth)

    return _collect(n, exclude, propose, "text_only", max_tries=20 * n + 100)


def _text_only_wrong(item: Item, rng: np.random.Generator, cfg: StreamConfig) -> str:
    """Off by 1..3 (never negative, never the true value)."""
    true = int(item.answer)
    options = [true + d for d in (-3, -2, -1, 1, 2, 3) if true + d >= 0]
    return str(options[int(rng.integers(len(options)))])


def _text_only_jitter(item: Item, rng: np.random.Generator, cfg: StreamConfig) -> tuple[Item, dict]:
    """Near-duplicate of a question without an image: the same question reworded."""
    return replace(item, question=_text_question(item.truth, 1)), {"jitter": {"reworded": True}}


register(
    DatasetSpec(
        name="text_only",
        skill="answer arithmetic and spelling questions that need no image",
        make=make_text_only,
        wrong_answer=_text_only_wrong,
        jitter=_text_only_jitter,
        has_images=False,
        card=CardInfo(
            pretty_name="Text-only arithmetic and spelling (generated)",
            license="apache-2.0",
            license_note="Generated by this project's code (Apache-2.0); no third-party content.",
            task_categories=("question-answering", "text-generation"),
            source_datasets=("original",),
            generation=(
                "Questions without an image, one of four kinds drawn uniformly: a sum or a difference "
                f"of integers 0..{ADD_SUB_MAX} (differences never negative), a product from the "
                f"{MUL_RANGE[0]}..{MUL_RANGE[1]} times tables, or the number of letters in an English "
                "word. No question appears twice in a split or in both splits. The answer is the exact "
                "integer. Near-duplicates reword the question (`+` becomes `plus`, etc.)."
            ),
            answers="non-negative integers (digits)",
        ),
    )
)


# --------------------------------------------------------------------- position

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
# Position: one shape, half-side 5-8 px, its centre at least this many pixels
# from both mid-lines, so the corner it sits in is never ambiguous.
POSITION_RADII = (5, 8)
POSITION_CLEAR = 4


def corner_of(cx: int, cy: int, size: int) -> str:
    """The image quarter (``CORNERS``) holding the point (cx, cy); y grows downwards."""
    return f"{'top' if cy < size / 2 else 'bottom'}-{'left' if cx < size / 2 else 'right'}"


def make_position(split: str, n: int, rng: np.random.Generator, cfg: StreamConfig, exclude: set) -> list[Item]:
    colors, size = list(draw.PALETTE), cfg.image_size

    def propose() -> Item | None:
        r = int(rng.integers(POSITION_RADII[0], POSITION_RADII[1] + 1))
        cx, cy = (int(v) for v in rng.integers(r + MARGIN, size - r - MARGIN, size=2))
        if min(abs(cx - size / 2), abs(cy - size / 2)) < POSITION_CLEAR:
            return None
        obj = {"kind": draw.SHAPES[int(rng.integers(len(draw.SHAPES)))], "cx": cx, "cy": cy, "r": r,
               "color": colors[int(rng.integers(len(colors)))]}
        corner = corner_of(cx, cy, size)
        truth = {"corner": corner, "objects": [obj]}
        question = f"In which corner of the image is the {obj['color']} {obj['kind']}?"
        key = "position/" + json.dumps(obj, sort_keys=True)
        return Item(key, question, corner, draw.render_shapes(size, [obj]), truth)

    return _collect(n, exclude, propose, "position", max_tries=50 * n + 100)


register(
    DatasetSpec(
        name="position",
        skill="tell which corner of the image an object is in",
        make=make_position,
        wrong_answer=lambda item, rng, cfg: _other(CORNERS, item.answer, rng),
        jitter=image_jitter,
        has_images=True,
        card=CardInfo(
            pretty_name="Object position (generated)",
            license="apache-2.0",
            license_note="Generated by this project's code (Apache-2.0); no third-party content.",
            task_categories=("visual-question-answering",),
            source_datasets=("original",),
            generation=(
                "A white square canvas with one filled shape (circle, square or triangle) of a palette "
                f"colour, half-side {POSITION_RADII[0]}-{POSITION_RADII[1]} px, drawn with PIL without "
                f"anti-aliasing, its centre at least {POSITION_CLEAR} px from both mid-lines of the image. "
                "The answer is the quarter of the image that holds the centre (y grows downwards)."
            ),
            answers=", ".join(f"`{c}`" for c in CORNERS),
        ),
    )
)


# ---------------------------------------------------------------- text compare

COMPARE_MAX = 999
COMPARE_TEMPLATES = ("Which number is larger, {a} or {b}?", "Which is the bigger number: {a} or {b}?")


def make_compare(split: str, n: int, rng: np.random.Generator, cfg: StreamConfig, exclude: set) -> list[Item]:
    def propose() -> Item:
        a, b = (int(v) for v in rng.choice(COMPARE_MAX + 1, size=2, replace=False))
        truth = {"a": a, "b": b}
        key = "compare/" + json.dumps(truth, sort_keys=True)
        return Item(key, COMPARE_TEMPLATES[0].format(a=a, b=b), str(max(a, b)), None, truth)

    return _collect(n, exclude, propose, "compare", max_tries=20 * n + 100)


def _compare_jitter(item: Item, rng: np.random.Generator, cfg: StreamConfig) -> tuple[Item, dict]:
    """Near-duplicate of a question without an image: the same question reworded."""
    return replace(item, question=COMPARE_TEMPLATES[1].format(**item.truth)), {"jitter": {"reworded": True}}


register(
    DatasetSpec(
        name="compare",
        skill="tell which of two numbers is larger, without an image",
        make=make_compare,
        wrong_answer=lambda item, rng, cfg: str(min(item.truth["a"], item.truth["b"])),
        jitter=_compare_jitter,
        has_images=False,
        card=CardInfo(
            pretty_name="Comparing numbers, text only (generated)",
            license="apache-2.0",
            license_note="Generated by this project's code (Apache-2.0); no third-party content.",
            task_categories=("question-answering", "text-generation"),
            source_datasets=("original",),
            generation=(
                f"Two different integers 0..{COMPARE_MAX} drawn uniformly; the question asks which is "
                "larger and the answer is that number, as digits. No pair appears twice in a split or in "
                "both splits (the order of the two numbers counts). Near-duplicates reword the question. "
                "A mislabeled record answers the smaller number."
            ),
            answers="the larger of the two numbers (digits)",
        ),
    )
)
