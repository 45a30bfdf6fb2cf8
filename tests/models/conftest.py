"""Tiny models of both families, built from configs (no download), and a few samples."""
from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image, ImageDraw

from lifelong.data.sample import Sample
from lifelong.models.config import ModelConfig, tiny_model_config

FAMILIES = ["composed", "hf"]


def tiny_config(family: str, cache_dir, **overrides) -> ModelConfig:
    """A tiny model of ``family``: random 2-layer LMs of width 64, 32x32 images."""
    return tiny_model_config(cache_dir, family, **overrides)


@pytest.fixture(params=FAMILIES)
def family(request):
    return request.param


@pytest.fixture
def make_model(model_cache):
    from lifelong.models import load_model

    def make(family: str, **overrides):
        return load_model(tiny_config(family, model_cache, **overrides))

    return make


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def images():
    """Content hash -> PIL image: three different pictures, sizes not square."""
    pics = []
    boxes = [((220, 30, 30), (4, 4, 30, 20)), ((30, 30, 220), (10, 2, 40, 28)), ((30, 200, 30), (0, 0, 12, 12))]
    for color, box in boxes:
        im = Image.new("RGB", (48, 32), (250, 250, 250))
        ImageDraw.Draw(im).rectangle(box, fill=color)
        pics.append(im)
    return {hashlib.sha256(_png(im)).hexdigest(): im for im in pics}


@pytest.fixture(scope="session")
def samples(images):
    """An image sample, a two-turn sample with an image in the second user turn, a text-only one."""
    h = list(images)
    return [
        Sample(
            id="img-1",
            dataset="toy",
            task="color",
            split="train",
            conversation=[
                {"role": "user", "content": "<image>\nWhat color is the box?"},
                {"role": "assistant", "content": "Red."},
            ],
            images=[h[0]],
        ),
        Sample(
            id="multi-2",
            dataset="toy",
            task="chat",
            split="train",
            conversation=[
                {"role": "user", "content": "Hello, can you help me?"},
                {"role": "assistant", "content": "Of course, what do you need?"},
                {"role": "user", "content": "Which color is in <image> this picture?"},
                {"role": "assistant", "content": "It is blue."},
            ],
            images=[h[1]],
        ),
        Sample(
            id="text-3",
            dataset="toy",
            task="math",
            split="train",
            conversation=[{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}],
        ),
    ]
