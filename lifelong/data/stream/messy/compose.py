"""The six datasets of the ``messy`` stream, composed in memory (no files).

Each dataset is one builder function registered in ``MESSY_DATASETS``, in
arrival order; a builder draws contents of the skills it teaches (never one a
held-out split or an earlier dataset used, unless it reuses an earlier image
on purpose) and mixes in its defects. Every defect is named in the record's
``defect`` (one per record) and copies share a ``group``: what the ``oracle``
strategy reads and nothing else may.

Defect kinds (``DEFECTS``):

- ``near_copy``: the image shifted by 1..``jitter_px`` pixels (text-only: the
  question with ``copy_suffix``), same answer; its ``group`` is the copied
  record's.
- ``wrong_label``: another answer of the same kind (the true one kept in
  provenance).
- ``swapped_image``: the question's image replaced by the image of an
  earlier record of another task; the answer is the original image's.
- ``irrelevant_image``: a text-only question that comes with the image of an
  unrelated earlier record.
- ``dominant_answer``: a record of the answer that fills ``dominant_share``
  of a dataset, beyond the mean count of the other answers (the excess a
  balanced draw would not hold); otherwise clean.
"""
from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from lifelong.data.stream import draw
from lifelong.data.stream.config import StreamConfig
from lifelong.data.stream.generators.spec import Item
from lifelong.data.stream.generators.vqa import EVQA_SHAPES
from lifelong.data.stream.messy.config import MessyConfig, count
from lifelong.data.stream.messy.skills import SKILLS


@dataclass(eq=False)
class Record:
    """One record before it is written: ``image`` (H, W, 3) uint8 or None; ``image_of`` the
    earlier record whose image it shows (reused, swapped in, or unrelated); ``group`` a copy
    group number within its dataset (the copied record and its copies)."""

    task: str
    content: Item
    wording: int
    question: str
    answer: str
    image: np.ndarray | None
    defect: str | None = None
    group: int | None = None
    image_of: "Record | None" = None
    true_answer: str = ""
    id: str = ""  # set when the dataset's records are ordered and written

    def __post_init__(self):
        self.true_answer = self.true_answer or self.answer


@dataclass
class Dataset:
    """A composed dataset: its records (train) and what its card says."""

    name: str
    records: list[Record]
    summary: str


def image_hash(image: np.ndarray | None) -> str | None:
    return None if image is None else hashlib.sha256(image.tobytes()).hexdigest()


def rng_for(seed: int, name: str, purpose: int = 0) -> np.random.Generator:
    """The generator of ``purpose`` for ``name`` (a dataset, or ``<split>/<task>``): stable across processes."""
    return np.random.default_rng([seed, zlib.crc32(f"messy/{name}".encode("utf-8")), purpose])


@dataclass
class Composer:
    """Shared state while the stream is composed: contents used so far (by key and image
    hash), held-out records per task, and every earlier dataset's records."""

    cfg: StreamConfig
    scale: str
    seed: int
    used: set = field(default_factory=set)  # content keys of every split so far
    held_out_images: set = field(default_factory=set)  # image hashes of the held-out splits
    held_out: dict = field(default_factory=dict)  # split -> task -> [Record]
    earlier: list = field(default_factory=list)  # records of the datasets composed so far

    @property
    def m(self) -> MessyConfig:
        return self.cfg.messy

    def contents(self, task: str, split: str, n: int, rng: np.random.Generator) -> list[Item]:
        """``n`` new contents of ``task`` for ``split``, none whose key was used or whose image
        is a held-out image (generated scenes can repeat an image under another key)."""
        out: list[Item] = []
        for _ in range(20):
            if len(out) == n:
                return out
            for it in SKILLS[task].draw(split, n - len(out), rng, self.cfg, self.used):
                self.used.add(it.key)
                h = image_hash(it.image)
                if h is not None and h in self.held_out_images:
                    continue
                if split != "train" and h is not None:
                    self.held_out_images.add(h)
                out.append(it)
        raise ValueError(f"messy stream: could not draw {n} {split} contents of {task}")

    def record(self, task: str, item: Item, rng: np.random.Generator, wording: int | None = None) -> Record:
        """A clean record asking ``item`` in ``wording`` (default: a random one)."""
        skill = SKILLS[task]
        w = int(rng.integers(skill.n_wordings)) if wording is None else wording
        return Record(task, item, w, skill.ask(item, w), item.answer, item.image)

    def near_copy(self, rec: Record, group: int, rng: np.random.Generator, wording: int | None = None,
                  shift: tuple[int, int] | None = None) -> Record:
        """A near-copy of ``rec`` (which joins copy group ``group``); ``shift`` and ``wording`` pick the
        variant (default: a random shift, the same wording). Its image is never a held-out one."""
        rec.group = group
        w = rec.wording if wording is None else wording
        question = SKILLS[rec.task].ask(rec.content, w)
        image = None
        if rec.image is None:
            question += self.m.copy_suffix
        else:
            shifts = [shift] if shift is not None else [tuple(s) for s in rng.permutation(self.shifts())]
            for dy, dx in shifts:
                image = draw.shift(rec.image, int(dy), int(dx))
                if image_hash(image) not in self.held_out_images:
                    break
            else:
                raise ValueError("messy stream: every shift of a copy is a held-out image")
        return Record(rec.task, rec.content, w, question, rec.answer, image, defect="near_copy", group=group)

    def shifts(self) -> list[tuple[int, int]]:
        p = self.m.jitter_px
        return [(dy, dx) for dy in range(-p, p + 1) for dx in range(-p, p + 1) if (dy, dx) != (0, 0)]

    def earlier_images(self, exclude_tasks: tuple[str, ...] = ()) -> list[Record]:
        """Earlier clean records with an image of their own (not reused, swapped or copied),
        of tasks not in ``exclude_tasks``."""
        return [r for r in self.earlier if r.image is not None and r.image_of is None and r.defect is None
                and r.task not in exclude_tasks]


def split_evenly(n: int, parts: int) -> list[int]:
    """``n`` as ``parts`` counts differing by at most one, the larger ones first."""
    return [n // parts + (i < n % parts) for i in range(parts)]


# ------------------------------------------------------------------- builders

Builder = Callable[[Composer, int, np.random.Generator], Dataset]
MESSY_DATASETS: dict[str, tuple[tuple[str, ...], Builder]] = {}


def messy_dataset(name: str, tasks: tuple[str, ...]):
    """Register a builder ``fn(composer, n_train, rng) -> Dataset`` of dataset ``name`` teaching ``tasks``."""
    def deco(fn: Builder) -> Builder:
        if name in MESSY_DATASETS:
            raise ValueError(f"messy dataset {name!r} is already registered")
        MESSY_DATASETS[name] = (tasks, fn)
        return fn

    return deco


@messy_dataset("templated", ("vqa_shape", "category", "compare"))
def templated(c: Composer, n: int, rng: np.random.Generator) -> Dataset:
    """LLaVA-665k-like: three head skills, each content asked in 3-5 wordings, plus near-copies."""
    tasks = MESSY_DATASETS["templated"][0]
    n_copy = count(c.m.near_copy_rate, n)
    originals: list[Record] = []
    for task, quota in zip(tasks, split_evenly(n - n_copy, len(tasks))):
        n_words = SKILLS[task].n_wordings
        lo, hi = min(c.m.min_wordings, n_words), min(c.m.max_wordings, n_words)
        k = [int(v) for v in rng.integers(lo, hi + 1, size=quota)]  # wordings per content, enough of them
        n_contents = int(np.searchsorted(np.cumsum(k), quota)) + 1
        for item, kk in zip(c.contents(task, "train", n_contents, rng), k):
            kk = min(kk, quota - sum(r.task == task for r in originals))
            for w in rng.choice(n_words, size=kk, replace=False):
                originals.append(c.record(task, item, rng, int(w)))
    if n_copy > len(originals):
        raise ValueError(f"templated: {n_copy} near-copies asked for but only {len(originals)} originals")
    copies = [c.near_copy(originals[int(i)], g, rng) for g, i in
              enumerate(rng.choice(len(originals), size=n_copy, replace=False))]
    return Dataset("templated", originals + copies,
                   f"LLaVA-665k-like templated mixture: every content asked in {c.m.min_wordings}-"
                   f"{c.m.max_wordings} wordings of its question, {c.m.near_copy_rate:.0%} near-copies")


@messy_dataset("reuse", ("digits", "counting", "vqa_color"))
def reuse(c: Composer, n: int, rng: np.random.Generator) -> Dataset:
    """M3IT-like: two tail skills of its own, and new questions about images of earlier datasets
    (the templated mixture's shapes asked for their colour)."""
    n_reuse = count(c.m.reuse_rate, n)
    records: list[Record] = []
    for task, quota in zip(("digits", "counting"), split_evenly(n - n_reuse, 2)):
        records += [c.record(task, it, rng) for it in c.contents(task, "train", quota, rng)]
    # An easy-vqa image asked about before is asked about its other property (and answered with it).
    other = {"vqa_shape": "vqa_color", "vqa_color": "vqa_shape"}
    field_of = {"vqa_shape": "shape", "vqa_color": "color"}
    by_key = {}
    for r in c.earlier_images():
        if r.task in other:
            by_key.setdefault(r.content.key, r)
    if n_reuse > len(by_key):
        raise ValueError(f"reuse: {n_reuse} reused images asked for, the earlier datasets hold {len(by_key)}")
    keys = sorted(by_key)
    for i in rng.choice(len(keys), size=n_reuse, replace=False):
        src = by_key[keys[int(i)]]
        task = other[src.task]
        rec = c.record(task, replace(src.content, answer=src.content.truth[field_of[task]]), rng)
        rec.image_of = src
        records.append(rec)
    return Dataset("reuse", records, f"M3IT-like mixture: {c.m.reuse_rate:.0%} of the records ask new "
                   "questions about images of an earlier dataset (`provenance.image_of`), not a defect")


@messy_dataset("rare", ("position",))
def rare(c: Composer, n: int, rng: np.random.Generator) -> Dataset:
    """A small, clean dataset of a skill no other dataset teaches."""
    return Dataset("rare", [c.record("position", it, rng) for it in c.contents("position", "train", n, rng)],
                   "small and clean, the only dataset of its skill")


@messy_dataset("noisy", ("vqa_shape",))
def noisy(c: Composer, n: int, rng: np.random.Generator) -> Dataset:
    """Wrong answers, images swapped in from other tasks, one answer in half the records."""
    task = "vqa_shape"
    n_wrong, n_swap = count(c.m.wrong_label_rate, n), count(c.m.swapped_image_rate, n)
    n_clean, n_dom = n - n_wrong - n_swap, count(c.m.dominant_share, n)
    if n_dom > n_clean:
        raise ValueError(f"noisy: the dominant answer's {n_dom} records do not fit in {n_clean} clean ones")
    answers = EVQA_SHAPES
    dominant = answers[int(rng.integers(len(answers)))]
    dom = _contents_with(c, task, n_dom, rng, lambda a: a == dominant)
    rest = _contents_with(c, task, n - n_dom, rng, lambda a: a != dominant)
    records = [c.record(task, it, rng) for it in dom + rest[: n_clean - n_dom]]
    # The dominant answer's excess over the other answers' mean count among the clean records.
    others = n_clean - n_dom
    excess = n_dom - int(np.floor(others / (len(answers) - 1) + 0.5))
    for i in rng.choice(n_dom, size=excess, replace=False):
        records[int(i)].defect = "dominant_answer"
    for it in rest[n_clean - n_dom : n_clean - n_dom + n_wrong]:
        rec = c.record(task, it, rng)
        wrong = SKILLS[task].wrong(it, rng, c.cfg)
        while wrong == dominant:  # a wrong answer never adds to the dominant one
            wrong = SKILLS[task].wrong(it, rng, c.cfg)
        rec.answer, rec.defect = wrong, "wrong_label"
        records.append(rec)
    # No image that shows a shape: the answer then belongs to no part of the image.
    donors = c.earlier_images(exclude_tasks=("vqa_color", "vqa_shape", "counting", "position"))
    if n_swap > len(donors):
        raise ValueError(f"noisy: {n_swap} swapped images asked for, the earlier datasets hold {len(donors)}")
    for it, j in zip(rest[n_clean - n_dom + n_wrong :], rng.choice(len(donors), size=n_swap, replace=False)):
        rec = c.record(task, it, rng)
        rec.image_of, rec.image, rec.defect = donors[int(j)], donors[int(j)].image, "swapped_image"
        records.append(rec)
    return Dataset("noisy", records,
                   f"noisy: {c.m.wrong_label_rate:.0%} wrong answers, {c.m.swapped_image_rate:.0%} images "
                   f"swapped in from other tasks, one answer (`{dominant}`) in {c.m.dominant_share:.0%} of "
                   "the records")


def _contents_with(c: Composer, task: str, n: int, rng: np.random.Generator, keep) -> list[Item]:
    """``n`` new train contents of ``task`` whose answer passes ``keep``; the others drawn on
    the way are put back (their keys stay unused)."""
    out: list[Item] = []
    for _ in range(50):
        if len(out) >= n:
            break
        batch = SKILLS[task].draw("train", 4 * (n - len(out)) + 8, rng, c.cfg, c.used)
        for it in batch:
            h = image_hash(it.image)
            if len(out) < n and keep(it.answer) and (h is None or h not in c.held_out_images):
                c.used.add(it.key)
                out.append(it)
    if len(out) < n:
        raise ValueError(f"messy stream: could not draw {n} {task} contents of the wanted answers")
    return out


@messy_dataset("duplicates", ("vqa_shape",))
def duplicates(c: Composer, n: int, rng: np.random.Generator) -> Dataset:
    """Duplicate-heavy: most records are near-copies of a few source images."""
    task = "vqa_shape"
    n_copy = count(c.m.copy_rate, n)
    originals = [c.record(task, it, rng) for it in c.contents(task, "train", n - n_copy, rng)]
    n_src = min(c.m.copy_sources, len(originals))
    n_words = SKILLS[task].n_wordings
    copies = []
    for g, (i, k) in enumerate(zip(rng.choice(len(originals), size=n_src, replace=False),
                                   split_evenly(n_copy, n_src))):
        src = originals[int(i)]
        # Distinct (shift, wording) variants, so no two copies are the same record.
        variants = [(s, w) for s in c.shifts() for w in range(n_words)] if src.image is not None else \
            [(None, w) for w in range(n_words)]
        if k > len(variants):
            raise ValueError(f"duplicates: {k} copies of one source, only {len(variants)} variants")
        for j in rng.choice(len(variants), size=k, replace=False):
            shift, w = variants[int(j)]
            copies.append(c.near_copy(src, g, rng, wording=w, shift=shift))
    return Dataset("duplicates", originals + copies,
                   f"duplicate-heavy: {c.m.copy_rate:.0%} of the records are near-copies of "
                   f"{c.m.copy_sources} source images (shifted and reworded)")


@messy_dataset("small_tasks", ("vqa_shape", "compare"))
def small_tasks(c: Composer, n: int, rng: np.random.Generator) -> Dataset:
    """Small tasks of the head skills (the tail skills stay with the one dataset that teaches
    each); some text-only questions come with an unrelated image."""
    tasks = MESSY_DATASETS["small_tasks"][0]
    records: list[Record] = []
    for task, quota in zip(tasks, split_evenly(n, len(tasks))):
        records += [c.record(task, it, rng) for it in c.contents(task, "train", quota, rng)]
    text = [r for r in records if r.image is None]
    n_irr = count(c.m.irrelevant_image_rate, n)
    if n_irr > len(text):
        raise ValueError(f"small_tasks: {n_irr} unrelated images asked for, {len(text)} text-only records")
    donors = c.earlier_images()
    for r, j in zip((text[int(i)] for i in rng.choice(len(text), size=n_irr, replace=False)),
                    rng.choice(len(donors), size=n_irr, replace=False)):
        r.image_of, r.image, r.defect = donors[int(j)], donors[int(j)].image, "irrelevant_image"
    return Dataset("small_tasks", records,
                   f"small tasks of the head skills; {c.m.irrelevant_image_rate:.0%} of the records are text-only "
                   "questions that come with an unrelated image")


# ---------------------------------------------------------------------- stream

def compose(cfg: StreamConfig, scale: str, seed: int) -> tuple[list[Dataset], dict[str, dict[str, list[Record]]]]:
    """Every dataset of the messy stream in arrival order, and the clean held-out records
    ``{split: {task: [Record]}}`` (splits ``test`` and ``val``), for ``seed`` at ``scale``."""
    c = Composer(cfg, scale, seed)
    h = cfg.messy.held_out_size(scale)
    tasks = [t for name in MESSY_DATASETS for t in MESSY_DATASETS[name][0]]
    for split in ("test", "val"):
        c.held_out[split] = {}
        for task in dict.fromkeys(tasks):
            rng = rng_for(seed, f"{split}/{task}")
            c.held_out[split][task] = [c.record(task, it, rng) for it in c.contents(task, split, h, rng)]
    out = []
    for name, (_, build) in MESSY_DATASETS.items():
        ds = build(c, cfg.messy.train_size(name, scale), rng_for(seed, name))
        c.earlier += ds.records
        out.append(ds)
    return out, c.held_out
