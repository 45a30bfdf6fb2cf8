"""Configuration of the ``messy`` built-in stream: sizes per dataset and defect rates."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass
class MessyConfig:
    """What the ``messy`` stream holds, at scale ``full`` (``small`` is ``small_fraction`` of
    each train size, for tests).

    Six datasets shaped like the Adapt-∞ paper's stream (sizes are train records,
    copies and defects included). Together 1,500 records, less than the clean
    demo stream's 7 x 300, so an Adapt-∞ run of the demo settings fits the
    clean demo's ~15 minutes on 2 CPU cores.

    Skills are imbalanced as in real collections, whose head is a few easy,
    heavily templated and copied tasks and whose tail is harder skills taught
    by a small share of one dataset: three head skills (shape, category,
    compare) fill ~90 % of the pool; four tail skills hold 24-48 records each
    (digits and counting: the reuse mixture's own skills; colour: its
    questions about earlier images; position: the rare dataset). A uniform
    draw gives the tail its share of the pool; a selector that balances
    skills gives it more.

    Every rate is a fraction of the dataset's train records, rounded once
    (half up), so counts are exact and do not depend on the seed.
    ``held_out`` is the split the manifest offers as each dataset's ``test``:
    ``val`` to choose settings (the loop then evaluates on validation
    questions), ``test`` to report.
    """

    # LLaVA-665k-like: a templated mixture of four skills, 3-5 wordings of the
    # same question per image (or word), near-copies on top.
    templated_train: int = 640
    min_wordings: int = 3
    max_wordings: int = 5
    near_copy_rate: float = 0.30
    # M3IT-like: a mixture that asks new questions about images of the
    # templated mixture (reuse_rate of its records: their colour) beside two
    # skills of its own that no other dataset teaches (tail skills).
    reuse_train: int = 120
    reuse_rate: float = 0.20
    # A small, clean dataset of a skill no other dataset teaches.
    rare_train: int = 40
    # A noisy dataset: wrong answers, images swapped in from other tasks, and
    # one answer in ``dominant_share`` of the records (the records of that
    # answer beyond the other answers' mean count are flagged).
    noisy_train: int = 240
    wrong_label_rate: float = 0.20
    swapped_image_rate: float = 0.15
    dominant_share: float = 0.50
    # Duplicate-heavy: copy_rate of the records are near-copies of copy_sources
    # source images.
    duplicates_train: int = 220
    copy_rate: float = 0.60
    copy_sources: int = 8
    # Small tasks of the head skills; irrelevant_image_rate of the records are
    # text-only questions that come with an unrelated image.
    small_tasks_train: int = 240
    irrelevant_image_rate: float = 0.10
    # Clean held-out questions per task (skill), for test and validation each.
    # Category has 50 held-out words per split, so 50 is its most.
    held_out_per_task: int = 50
    small_fraction: float = 0.1
    small_held_out_per_task: int = 8
    # Near-copies shift the image by 1..jitter_px pixels (edge pixels repeated),
    # or, without an image, add ``copy_suffix`` to the question.
    jitter_px: int = 2
    copy_suffix: str = " Answer briefly."
    held_out: Literal["test", "val"] = "test"

    def train_size(self, name: str, scale: str) -> int:
        """Train records of dataset ``name`` at ``scale``."""
        full = getattr(self, f"{name}_train")
        return full if scale == "full" else max(1, math.floor(self.small_fraction * full + 0.5))

    def held_out_size(self, scale: str) -> int:
        if scale not in ("small", "full"):
            raise ValueError(f"unknown scale {scale!r} (known: small, full)")
        return self.held_out_per_task if scale == "full" else self.small_held_out_per_task


def count(rate: float, n: int) -> int:
    """``floor(rate * n + 0.5)``: the records of ``n`` that a rate makes."""
    return math.floor(rate * n + 0.5)
