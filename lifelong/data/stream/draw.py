"""Pure image helpers for the generated datasets: shapes, text, jitter, noise.

Everything returns ``uint8`` arrays of shape ``(H, W, 3)``. Drawing uses PIL
without anti-aliasing, so every object keeps its exact palette colour (the tests
find objects by colour).
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WHITE = (255, 255, 255)

# Named colours for generated objects: far apart in RGB and none close to white.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (40, 70, 220),
    "yellow": (230, 200, 20),
    "purple": (140, 40, 170),
    "orange": (240, 120, 10),
    "black": (20, 20, 20),
}

SHAPES = ("circle", "square", "triangle")


def draw_shape(draw: ImageDraw.ImageDraw, kind: str, cx: int, cy: int, r: int, color: tuple[int, int, int]) -> None:
    """Draw a filled ``kind`` centred at (cx, cy) inside the box of half-side ``r`` pixels."""
    box = (cx - r, cy - r, cx + r, cy + r)
    if kind == "circle":
        draw.ellipse(box, fill=color)
    elif kind == "square":
        draw.rectangle(box, fill=color)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    else:
        raise ValueError(f"unknown shape {kind!r} (known: {', '.join(SHAPES)})")


def render_shapes(size: int, objects: list[dict]) -> np.ndarray:
    """White ``size``x``size`` canvas with ``objects`` (dicts: kind, cx, cy, r, color name) drawn in order."""
    img = Image.new("RGB", (size, size), WHITE)
    draw = ImageDraw.Draw(img)
    for o in objects:
        draw_shape(draw, o["kind"], o["cx"], o["cy"], o["r"], PALETTE[o["color"]])
    return np.asarray(img, dtype=np.uint8).copy()  # (H, W, 3)


def text_extent(word: str) -> tuple[int, int]:
    """(width, height) in pixels of ``word`` in PIL's built-in bitmap font at scale 1."""
    font = ImageFont.load_default_imagefont()
    left, top, right, bottom = font.getbbox(word)
    return right - left, bottom - top


def render_text(size: int, word: str, x: int, y: int, scale: int, fg: tuple[int, int, int], bg: tuple[int, int, int]) -> np.ndarray:
    """``word`` in PIL's built-in bitmap font (no font file, no FreeType), enlarged
    ``scale`` times by pixel repetition, top-left corner at (x, y) on a ``bg`` canvas."""
    font = ImageFont.load_default_imagefont()
    w, h = text_extent(word)
    glyphs = Image.new("L", (w, h), 0)
    ImageDraw.Draw(glyphs).text((0, 0), word, fill=255, font=font)
    mask = np.asarray(glyphs, dtype=np.uint8) > 127  # (h, w)
    mask = mask.repeat(scale, axis=0).repeat(scale, axis=1)  # (h*scale, w*scale)
    out = np.empty((size, size, 3), dtype=np.uint8)
    out[:] = bg
    region = out[y : y + mask.shape[0], x : x + mask.shape[1]]
    region[mask[: region.shape[0], : region.shape[1]]] = fg
    return out


def shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Image moved by (dy, dx) pixels; the uncovered border repeats the edge pixels."""
    h, w = image.shape[:2]
    p = max(abs(dy), abs(dx))
    padded = np.pad(image, ((p, p), (p, p), (0, 0)), mode="edge")
    return padded[p - dy : p - dy + h, p - dx : p - dx + w].copy()


def uniform_noise(size: int, rng: np.random.Generator) -> np.ndarray:
    """An image unrelated to any question: i.i.d. uniform RGB pixels."""
    return rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
