"""Configuration of the built-in offline task stream."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from lifelong.data.stream.messy.config import MessyConfig

SCALES = ("small", "full")


@dataclass
class SplitSizes:
    """Samples per split of one dataset at one scale.

    ``train`` counts every record of the train split, injected near-duplicates
    and noisy records included; ``test`` is clean (no duplicates, no noise).
    """

    train: int
    test: int


def _default_order() -> list[str]:
    return ["vqa_shape", "vqa_color", "digits", "counting", "category", "position", "compare"]


@dataclass
class StreamConfig:
    """What ``prepare_stream`` writes.

    ``stream`` picks the built-in stream: ``clean`` (one skill per dataset,
    balanced, a few injected defects; every field below but ``messy``) or
    ``messy`` (six mixtures shaped like the Adapt-∞ paper's stream, with
    redundancy, shared and rare skills and defects; ``messy`` holds its sizes
    and rates, and it shares only ``image_size`` and ``max_count`` with the
    clean one; see ``lifelong/data/stream/messy/``).

    ``held_out`` is the clean stream's split the manifest offers as each
    dataset's ``test``: ``test`` (default) to report, ``val`` to choose
    settings: a validation split as large as the test one, drawn after train
    and disjoint from train and test (category's validation words are a second
    fifth of each kind's words, kept out of train as well; every other dataset
    trains on the same records as with ``test``). The messy stream's is
    ``messy.held_out``.

    ``order`` is the arrival order of the datasets (names from the registry in
    ``lifelong.data.stream.generators``). The three rates are fractions of each
    train split; the counts are rounded once per split, so they are exact and do
    not depend on the seed. Test splits never get duplicates or noise.
    """

    stream: Literal["clean", "messy"] = "clean"
    order: list[str] = field(default_factory=_default_order)
    # Sizes per scale, flat so that one can be overridden alone (``full_train=1000``).
    # small: for tests, the whole stream prepares in a few seconds.
    small_train: int = 40
    small_test: int = 16
    # full: for the demo and benchmarks. A 135M model on 2 CPU cores trains at
    # ~4.5 samples/s and the whole demo (every round) has to fit in ~20 min, so
    # each dataset stays in the hundreds rather than thousands.
    full_train: int = 600
    full_test: int = 60
    # Near-duplicates: copies of a clean sample with the image shifted by
    # ``jitter_px`` pixels (text-only: the question reworded), same answer.
    # Gives semantic dedup something to find.
    duplicate_rate: float = 0.10
    # Wrong answer for the question and image (another answer of the same kind).
    mislabel_rate: float = 0.05
    # Image replaced by uniform noise, unrelated to the question; the answer is
    # kept, so only the question could explain it. Image datasets only; gives
    # the image-grounding expert something to find.
    ungrounded_rate: float = 0.05
    # Side of the square RGB images in pixels (easy-vqa ships 64x64 images).
    image_size: int = 64
    # Shift of a near-duplicate's image, in pixels (edge pixels are repeated).
    jitter_px: int = 1
    # Counting: the number of objects drawn is uniform in [1, max_count], one
    # per quarter of the image, so at most 4.
    max_count: int = 4
    held_out: Literal["test", "val"] = "test"
    messy: MessyConfig = field(default_factory=MessyConfig)

    def __post_init__(self):
        if self.held_out not in ("test", "val"):
            raise ValueError(f"stream held_out must be test or val, got {self.held_out!r}")
        if self.stream == "messy" and self.held_out != "test":
            raise ValueError("stream held_out picks the clean stream's held-out split; the messy stream's "
                             "is messy.held_out (stream.builtin_config.messy.held_out=val)")
        if self.stream == "messy" and self.order != _default_order():
            raise ValueError("stream order: the messy stream's datasets and their order are fixed "
                             "(lifelong/data/stream/messy/compose.py); `order` orders the clean stream")

    def sizes(self, scale: str) -> SplitSizes:
        """Split sizes of ``scale`` (one of ``SCALES``)."""
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r} (known: {', '.join(SCALES)})")
        return SplitSizes(train=getattr(self, f"{scale}_train"), test=getattr(self, f"{scale}_test"))


def corruption_counts(cfg: StreamConfig, n_train: int, has_images: bool) -> tuple[int, int, int]:
    """(near-duplicates, mislabeled, ungrounded) records in a train split of ``n_train``.

    Each is ``floor(rate * n_train + 0.5)``; ungrounded is 0 without images.
    """
    dup = math.floor(cfg.duplicate_rate * n_train + 0.5)
    mis = math.floor(cfg.mislabel_rate * n_train + 0.5)
    ung = math.floor(cfg.ungrounded_rate * n_train + 0.5) if has_images else 0
    if dup + mis + ung > n_train:
        raise ValueError("duplicate and noise rates add up to more than the train split")
    return dup, mis, ung
