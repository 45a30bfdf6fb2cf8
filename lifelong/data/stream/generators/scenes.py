"""Generated scenes of shapes: counting, spatial relations between two shapes, a shape's position and size."""
from __future__ import annotations

import json

import numpy as np

from lifelong.data.stream import draw
from lifelong.data.stream.config import StreamConfig
from lifelong.data.stream.generators.spec import (
    CardInfo,
    DatasetSpec,
    Item,
    _collect,
    _other,
    image_jitter,
    register,
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


# Object sizes and spacing for the generated scenes, in pixels: boxes kept
# ``GAP`` apart so objects never touch, and ``MARGIN`` from the border so a
# 1-px jitter never pushes an object off the image.
COUNT_RADII = (5, 8)
SPATIAL_RADII = (5, 7)
GAP = 3
MARGIN = 2
# Counting puts each shape wholly inside its own quarter of the image, its box
# at least ``MARGIN`` px from the border and from both mid-lines: the vision
# tower's 2x2 grid of image tokens then sees each shape in its own token, and
# the count is a sum over tokens rather than a sub-token judgement (with shapes
# anywhere, trained alone on 75 validation samples counting reached 0.58).
QUARTERS = ((0, 0), (1, 0), (0, 1), (1, 1))  # (column, row) of a quarter


def quarter_centre(rng: np.random.Generator, size: int, quarter: tuple[int, int], r: int) -> tuple[int, int]:
    """A centre for a box of half-side ``r`` inside ``quarter`` of a ``size``-px image,
    at least ``MARGIN`` px from the image border and from both mid-lines."""
    half = size // 2
    lo, hi = r + MARGIN, half - r - MARGIN  # inclusive range inside a quarter
    if hi < lo:
        raise ValueError(f"a shape of half-side {r} px does not fit in a quarter of a {size}-px image")
    col, row = quarter
    cx, cy = (int(v) for v in rng.integers(lo, hi + 1, size=2))
    return col * half + cx, row * half + cy


def make_counting(split: str, n: int, rng: np.random.Generator, cfg: StreamConfig, exclude: set) -> list[Item]:
    colors = list(draw.PALETTE)
    if not 1 <= cfg.max_count <= len(QUARTERS):
        raise ValueError(f"stream max_count must be 1..{len(QUARTERS)} (one shape per image quarter), "
                         f"got {cfg.max_count}")

    def propose() -> Item | None:
        count = int(rng.integers(1, cfg.max_count + 1))
        kind = draw.SHAPES[int(rng.integers(len(draw.SHAPES)))]
        quarters = [QUARTERS[int(q)] for q in rng.permutation(len(QUARTERS))[:count]]
        objects = []
        for quarter in quarters:
            r = int(rng.integers(COUNT_RADII[0], COUNT_RADII[1] + 1))
            cx, cy = quarter_centre(rng, cfg.image_size, quarter, r)
            objects.append({"kind": kind, "cx": cx, "cy": cy, "r": r,
                            "color": colors[int(rng.integers(len(colors)))]})
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
            task_categories=("visual-question-answering",),
            generation=(
                "A white square canvas with 1..{max_count} filled shapes of one kind (circle, square or "
                f"triangle), each of a random palette colour, half-side {COUNT_RADII[0]}-{COUNT_RADII[1]} px, "
                "drawn with PIL without anti-aliasing. Each shape lies wholly inside its own quarter of the "
                f"image (a random set of quarters), its box at least {MARGIN} px from the border and from "
                "both mid-lines, so shapes never touch. The answer is the number of shapes drawn, written "
                "as digits."
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
            task_categories=("visual-question-answering",),
            generation=(
                "A white square canvas with two filled shapes (circle, square or triangle) of two "
                "different palette colours, half-side 5-7 px, drawn with PIL without anti-aliasing, not "
                "touching. Placements are kept only when the offset between the centres along one axis "
                f"is at least {RELATION_RATIO} times the offset along the other and the two centres lie on "
                "opposite sides of the image's midline along that axis, so the relation is unambiguous and "
                "a 2x2 grid separates the two objects along it; when they sit in diagonal cells (about one "
                "scene in six), the cells differ along both axes and only the positions within the cells tell "
                "which offset dominates. The answer is where the first-named object is relative to the second (y "
                "grows downwards: `above` means a smaller row)."
            ),
            answers="`left`, `right`, `above`, `below`",
        ),
    )
)



# ------------------------------------------------------- one shape (position, size)

def one_shape(rng: np.random.Generator, size: int, r: int, clear: float = 0) -> dict | None:
    """One shape of half-side ``r`` anywhere in a ``size``-px image, its box ``MARGIN`` px inside
    the border, of a random kind and palette colour; None (drawn no further) when its centre lies
    within ``clear`` px of a mid-line."""
    cx, cy = (int(v) for v in rng.integers(r + MARGIN, size - r - MARGIN, size=2))
    if min(abs(cx - size / 2), abs(cy - size / 2)) < clear:
        return None
    colors = list(draw.PALETTE)
    return {"kind": draw.SHAPES[int(rng.integers(len(draw.SHAPES)))], "cx": cx, "cy": cy, "r": r,
            "color": colors[int(rng.integers(len(colors)))]}


def one_shape_item(name: str, image_size: int, obj: dict, question: str, answer: str, **truth) -> Item:
    """The item of a scene holding ``obj`` alone, keyed by the shape; ``truth`` plus the object."""
    key = f"{name}/" + json.dumps(obj, sort_keys=True)
    return Item(key, question, answer, draw.render_shapes(image_size, [obj]), {**truth, "objects": [obj]})


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
    size = cfg.image_size

    def propose() -> Item | None:
        r = int(rng.integers(POSITION_RADII[0], POSITION_RADII[1] + 1))
        obj = one_shape(rng, size, r, clear=POSITION_CLEAR)
        if obj is None:
            return None
        corner = corner_of(obj["cx"], obj["cy"], size)
        question = f"In which corner of the image is the {obj['color']} {obj['kind']}?"
        return one_shape_item("position", size, obj, question, corner, corner=corner)

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
            task_categories=("visual-question-answering",),
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


# ------------------------------------------------------------------------- size

SIZES = ("small", "medium", "large")
# Half-sides in pixels of each size class on the default 64-px canvas: boxes of
# 7-11, 17-21 and 27-33 px, so the classes never touch (the gap between them is
# 6 px of box side, far beyond the 1-px jitter).
SIZE_RADII = {"small": (3, 5), "medium": (8, 10), "large": (13, 16)}


def make_size(split: str, n: int, rng: np.random.Generator, cfg: StreamConfig, exclude: set) -> list[Item]:
    size = cfg.image_size
    if 2 * (SIZE_RADII["large"][1] + MARGIN) >= size:
        raise ValueError(f"a large shape (half-side {SIZE_RADII['large'][1]} px) does not fit a {size}-px image")

    def propose() -> Item:
        label = SIZES[int(rng.integers(len(SIZES)))]
        lo, hi = SIZE_RADII[label]
        obj = one_shape(rng, size, int(rng.integers(lo, hi + 1)))
        question = f"Is the {obj['color']} {obj['kind']} small, medium or large?"
        return one_shape_item("size", size, obj, question, label, size=label)

    return _collect(n, exclude, propose, "size", max_tries=50 * n + 100)


register(
    DatasetSpec(
        name="size",
        skill="tell how large an object is",
        make=make_size,
        wrong_answer=lambda item, rng, cfg: _other(SIZES, item.answer, rng),
        jitter=image_jitter,
        has_images=True,
        card=CardInfo(
            pretty_name="Object size (generated)",
            task_categories=("visual-question-answering",),
            generation=(
                "A white square canvas with one filled shape (circle, square or triangle) of a palette "
                "colour anywhere in the image, drawn with PIL without anti-aliasing, at least "
                f"{MARGIN} px from the border. Its size class is drawn uniformly, then its half-side "
                "within the class: " + ", ".join(f"{k} {a}-{b} px" for k, (a, b) in SIZE_RADII.items())
                + " (boxes of " + ", ".join(f"{2 * a + 1}-{2 * b + 1}" for a, b in SIZE_RADII.values())
                + " px on a side, so the classes never touch). The answer is the class."
            ),
            answers=", ".join(f"`{s}`" for s in SIZES),
        ),
    )
)
