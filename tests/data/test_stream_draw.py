"""Pure helpers of the stream generators, against hand-worked numbers."""
from __future__ import annotations

import numpy as np
import pytest

from lifelong.data.stream import StreamConfig
from lifelong.data.stream.config import corruption_counts
from lifelong.data.stream.draw import render_shapes, shift
from lifelong.data.stream.generators import relation_of, text_only_answer


def test_shift_moves_content_and_repeats_the_edge():
    img = np.arange(9, dtype=np.uint8).reshape(3, 3, 1).repeat(3, axis=2)
    # [[0 1 2] [3 4 5] [6 7 8]] moved one row down and one column right.
    out = shift(img, 1, 1)[..., 0]
    assert out.tolist() == [[0, 0, 1], [0, 0, 1], [3, 3, 4]]
    assert shift(img, -1, 0)[..., 0].tolist() == [[3, 4, 5], [6, 7, 8], [6, 7, 8]]


@pytest.mark.parametrize(
    "a, b, expected",
    [((10, 30), (40, 32), "left"), ((50, 20), (10, 25), "right"), ((30, 5), (33, 50), "above"),
     ((30, 50), (30, 10), "below"), ((10, 10), (20, 20), None),
     # dx = -15, dy = -4: 15 >= 3 * 4, clear; dx = -10, dy = -4: 10 < 12, ambiguous.
     ((10, 10), (25, 14), "left"), ((10, 10), (20, 14), None)],
)
def test_relation_of(a, b, expected):
    assert relation_of(*a, *b) == expected


def test_square_of_half_side_r_covers_2r_plus_1_pixels_per_side():
    img = render_shapes(16, [{"kind": "square", "cx": 8, "cy": 8, "r": 3, "color": "red"}])
    ink = (img != 255).any(-1)
    assert ink.sum() == 7 * 7
    assert ink[5:12, 5:12].all()


def test_corruption_counts_round_half_up():
    cfg = StreamConfig(duplicate_rate=0.1, mislabel_rate=0.05, ungrounded_rate=0.05)
    assert corruption_counts(cfg, 40, True) == (4, 2, 2)
    assert corruption_counts(cfg, 30, True) == (3, 2, 2)  # 1.5 -> 2
    assert corruption_counts(cfg, 30, False) == (3, 2, 0)
    with pytest.raises(ValueError):
        corruption_counts(StreamConfig(duplicate_rate=0.9, mislabel_rate=0.2), 10, True)


def test_text_only_answer():
    assert text_only_answer({"op": "add", "a": 47, "b": 58}) == 105
    assert text_only_answer({"op": "sub", "a": 47, "b": 8}) == 39
    assert text_only_answer({"op": "mul", "a": 7, "b": 12}) == 84
    assert text_only_answer({"op": "letters", "word": "zebra"}) == 5
