"""What a sample *shows and says*, as one vector: the redundancy feature of ``prune.features: content``.

A model's mean hidden state answers "what kind of sample is this", which is
the wrong question for pruning: every record of a one-template dataset looks
alike to it (cosine > 0.99 between distinct records), and a true near-copy (the
same question and answer over an image shifted by a pixel, or a reworded
question) can look *less* alike than two distinct records. Redundancy is about
content, so this feature is built from the content alone, with no model:

- image part: the first image as a ``side`` x ``side`` RGB thumbnail
  (bilinear), centred on its own mean and scaled to unit length (a uniform grey
  image has no image part). A shift by a
  pixel or a re-encoding barely moves it; another picture of the same kind does.
- text part: the words of every turn (lower-cased; ``<image>`` and punctuation
  dropped) hashed into ``buckets`` slots, each weighted (1 + log tf) x idf with
  idf = log((1 + N) / (1 + df)) + 1 over the N samples given (the pool), so a
  template's words, shared by a whole dataset, weigh little and what sets a
  record apart (its numbers, its object word, its answer) weighs most; unit length.

The row is ``[image / sqrt(2), text / sqrt(2)]`` for a sample with an image and
``[0, text]`` without one, so the cosine of two image samples is the mean of
their image and text cosines, that of two text-only samples their text cosine,
and an image sample and a text-only one share at most half. Rows are float32 and
unit length; nothing is learnt, so two runs over the same pool give the same rows.
"""
from __future__ import annotations

import os
import re
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

SIDE = 16
BUCKETS = 512
_WORD = re.compile(r"[a-z0-9]+")


def words(sample) -> list[str]:
    """The lower-cased words and numbers of every turn of ``sample`` (a Sample), ``<image>`` left out."""
    text = " ".join(turn["content"] for turn in sample.conversation).lower().replace("<image>", " ")
    return _WORD.findall(text)


def _buckets(tokens: list[str], buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """(slots, counts) of ``tokens`` hashed into ``buckets`` slots (crc32: the same in every process)."""
    if not tokens:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    slots = np.array([zlib.crc32(w.encode()) % buckets for w in tokens], dtype=np.int64)
    u, c = np.unique(slots, return_counts=True)
    return u, c.astype(np.float32)


def thumbnail(image, side: int = SIDE) -> np.ndarray:
    """(side * side * 3,) float32 unit vector: the RGB thumbnail of a PIL image, centred on its mean
    (a uniform grey image gives zeros)."""
    from PIL import Image

    px = np.asarray(image.convert("RGB").resize((side, side), Image.BILINEAR), dtype=np.float32).ravel()
    px = px - px.mean()
    norm = float(np.linalg.norm(px))
    return px / norm if norm > 1e-6 else np.zeros_like(px)


def content_features(samples: Sequence, load_image: Callable, side: int = SIDE, buckets: int = BUCKETS,
                     chunk: int = 4096, out: Path | None = None) -> np.ndarray:
    """(N, 3 * side**2 + buckets) float32 unit rows of ``samples`` (module docstring).

    ``samples`` is read ``chunk`` at a time (a lazy pool view keeps one chunk in
    memory), twice: once for the words' document frequencies, once for the rows.
    ``load_image(digest)`` returns a sample's image. ``out``: the rows go to a
    ``.npy`` file there and a read-only memmap of it is returned.
    """
    n = len(samples)
    if n == 0:
        raise ValueError("cannot compute content features of zero samples")
    df = np.zeros(buckets, np.float64)
    for a in range(0, n, chunk):
        for s in samples[a:a + chunk]:
            df[_buckets(words(s), buckets)[0]] += 1
    idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
    d_img = 3 * side * side
    tmp = None if out is None else Path(out).with_suffix(".tmp.npy")
    rows = (np.zeros((n, d_img + buckets), np.float32) if tmp is None else
            np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, d_img + buckets)))
    half = np.float32(1 / np.sqrt(2))
    for a in range(0, n, chunk):
        part = samples[a:a + chunk]
        block = np.zeros((len(part), d_img + buckets), np.float32)
        for j, s in enumerate(part):
            slots, counts = _buckets(words(s), buckets)
            text = np.zeros(buckets, np.float32)
            text[slots] = (1.0 + np.log(counts)) * idf[slots]
            text /= max(float(np.linalg.norm(text)), 1e-12)
            img = thumbnail(load_image(s.image), side) if s.image else None
            if img is not None and img.any():
                block[j, :d_img], block[j, d_img:] = img * half, text * half
            else:
                block[j, d_img:] = text
            norm = float(np.linalg.norm(block[j]))
            if norm > 0:
                block[j] /= norm  # no words and a uniform grey image: stays zero
        rows[a:a + len(part)] = block
    if out is None:
        return rows
    rows.flush()
    del rows
    os.replace(tmp, out)
    return np.load(out, mmap_mode="r")
