"""Every answer of the built-in stream checked against what the image shows.

The checks read the written PNGs and measure them independently of the
generators (blob counting, colour centroids, block sampling, regexes), then
compare with the answer in the record.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from lifelong.data.stream import DATASETS, StreamConfig, prepare_stream

# Colour names used in the spatial questions, as RGB (the scene palette).
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (40, 70, 220),
    "yellow": (230, 200, 20),
    "purple": (140, 40, 170),
    "orange": (240, 120, 10),
    "black": (20, 20, 20),
}


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stream")
    # The default order plus every other registered dataset.
    order = StreamConfig().order
    prepare_stream(out, scale="small", seed=3, datasets=order + sorted(set(DATASETS) - set(order)))
    return out


def records(stream: Path, name: str, split: str) -> list[dict]:
    return json.loads((stream / name / f"{split}.json").read_text(encoding="utf-8"))


def all_records(stream: Path, name: str) -> list[dict]:
    return records(stream, name, "train") + records(stream, name, "test")


def pixels(stream: Path, name: str, rec: dict) -> np.ndarray:
    with Image.open(stream / name / rec["image"]) as im:
        assert im.mode == "RGB"
        return np.asarray(im).astype(np.int64)  # (H, W, 3)


def qa(rec: dict) -> tuple[str, str]:
    human, gpt = rec["conversations"]
    return human["value"], gpt["value"]


def graded(stream: Path, name: str):
    """(record, image, answer, is_correct_expected) for every record whose image shows the content."""
    for rec in all_records(stream, name):
        p = rec["provenance"]
        if p["noise"] == "ungrounded":
            continue
        yield rec, pixels(stream, name, rec), qa(rec)[1], p["noise"] != "mislabeled"


def check(answer: str, measured: str, should_match: bool, rec: dict) -> None:
    if should_match:
        assert answer == measured, rec["id"]
    else:
        assert answer != measured, rec["id"]
        assert rec["provenance"]["true_answer"] == measured, rec["id"]


def test_counting_answer_is_number_of_blobs(stream):
    n = 0
    for rec, img, answer, ok in graded(stream, "counting"):
        ink = (img != 255).any(-1)  # white background
        labels, count = ndimage.label(ink, structure=np.ones((3, 3)))
        check(answer, str(count), ok, rec)
        # The kind named in the question, from how much of its bounding box each blob fills:
        # a square fills it all, a circle about pi/4, a triangle about a half.
        kind = re.search(r"How many (\w+)s are there", qa(rec)[0]).group(1)
        for sl in ndimage.find_objects(labels):
            fill = (labels[sl] > 0).mean()
            expected = "square" if fill > 0.97 else "circle" if fill > 0.65 else "triangle"
            assert expected == kind, rec["id"]
        # One shape per quarter, clear of both mid-lines (1 px of slack for the jitter),
        # so each of a 2x2 grid's cells holds at most one.
        half = img.shape[0] // 2
        quarters = set()
        for sl in ndimage.find_objects(labels):
            rows, cols = sl
            assert rows.stop <= half or rows.start >= half, rec["id"]
            assert cols.stop <= half or cols.start >= half, rec["id"]
            quarters.add((rows.start >= half, cols.start >= half))
        assert len(quarters) == count, rec["id"]
        n += 1
    assert n > 30


def test_spatial_answer_matches_colour_centroids(stream):
    pattern = re.compile(r"Is the (\w+) (\w+) left of, right of, above or below the (\w+) (\w+)\?")
    n = 0
    for rec, img, answer, ok in graded(stream, "spatial"):
        ca, _, cb, _ = pattern.search(qa(rec)[0]).groups()
        (ay, ax), (by, bx) = (np.argwhere((img == COLOURS[c]).all(-1)).mean(0) for c in (ca, cb))
        dx, dy = ax - bx, ay - by
        assert max(abs(dx), abs(dy)) >= 1.5 * min(abs(dx), abs(dy)), rec["id"]  # unambiguous
        if abs(dx) > abs(dy):
            measured = "left" if dx < 0 else "right"
        else:
            measured = "above" if dy < 0 else "below"  # rows grow downwards
        check(answer, measured, ok, rec)
        # Opposite sides of the midline along the relation's axis (a 2x2 grid sees them apart);
        # 3 px of slack for a triangle's centroid (r/3 below its box centre) and the 1-px jitter.
        lo, hi = sorted((ax, bx) if measured in ("left", "right") else (ay, by))
        half = img.shape[0] / 2
        assert lo < half + 3 and hi > half - 3 and hi - lo > 6, rec["id"]
        n += 1
    assert n > 30


def test_size_answer_matches_the_shape_extent(stream):
    pattern = re.compile(r"Is the (\w+) (\w+) small, medium or large\?")
    n, seen = 0, set()
    for rec, img, answer, ok in graded(stream, "size"):
        colour, _ = pattern.search(qa(rec)[0]).groups()
        px = np.argwhere((img == COLOURS[colour]).all(-1))
        assert len(px) == (img != 255).any(-1).sum(), rec["id"]  # one shape, of the colour named
        side = int((px.max(0) - px.min(0)).max()) + 1
        # Boxes of 7-11, 17-21 and 27-33 px: the side alone names the class.
        assert 7 <= side <= 11 or 17 <= side <= 21 or 27 <= side <= 33, (rec["id"], side)
        measured = "small" if side <= 11 else "medium" if side <= 21 else "large"
        check(answer, measured, ok, rec)
        seen.add(measured)
        n += 1
    assert n > 30 and seen == {"small", "medium", "large"}


def test_digits_image_and_answer_match_sklearn(stream):
    from sklearn.datasets import load_digits

    digits = load_digits()
    for rec, img, answer, ok in graded(stream, "digits"):
        i = rec["provenance"]["source_index"]
        # Centre pixel of each 8x8 block (robust to a 1-px jitter), back to ink levels 0..16.
        ink = np.rint((255 - img[4::8, 4::8, 0]) * 16 / 255)
        assert np.array_equal(ink, digits.images[i]), rec["id"]
        check(answer, str(digits.target[i]), ok, rec)
    # No digit of the test split is in the train split, and none is reserved for the projector's alignment.
    train = {r["provenance"]["source_index"] for r in records(stream, "digits", "train")}
    test = {r["provenance"]["source_index"] for r in records(stream, "digits", "test")}
    assert not train & test
    assert not (train | test) & {i for i in range(len(digits.target)) if i % 3 == 2}


def test_position_answer_is_the_quarter_of_the_colour_centroid(stream):
    pattern = re.compile(r"In which corner of the image is the (\w+) (\w+)\?")
    n = 0
    for rec, img, answer, ok in graded(stream, "position"):
        colour, _ = pattern.search(qa(rec)[0]).groups()
        ys, xs = np.nonzero((img == COLOURS[colour]).all(-1))
        assert len(ys) > 20 and (img != 255).any(-1).sum() == len(ys), rec["id"]  # one object, that colour
        h, w = img.shape[:2]
        # The whole shape within one quarter's half of each axis, well clear of the mid-lines.
        cy, cx = ys.mean(), xs.mean()
        assert min(abs(cy - h / 2), abs(cx - w / 2)) >= 2, rec["id"]
        measured = f"{'top' if cy < h / 2 else 'bottom'}-{'left' if cx < w / 2 else 'right'}"
        check(answer, measured, ok, rec)
        n += 1
    assert n > 30


def test_compare_answers_are_the_larger_number_and_have_no_image(stream):
    pattern = re.compile(r"Which (?:number is larger, |is the bigger number: )(\d+) or (\d+)\?")
    for rec in all_records(stream, "compare"):
        assert "image" not in rec
        question, answer = qa(rec)
        a, b = (int(x) for x in pattern.fullmatch(question).groups())
        assert a != b
        check(answer, str(max(a, b)), rec["provenance"]["noise"] != "mislabeled", rec)
        if rec["provenance"]["noise"] == "mislabeled":
            assert answer == str(min(a, b))


# Kinds of a few words, written here apart from the generator's lists: any record about one of
# them must answer this kind (or, mislabeled, record it as the true answer).
KNOWN_KINDS = {
    "animal": "cat tiger horse elephant panda rabbit zebra camel gorilla hedgehog",
    "fruit": "apple banana mango lemon cherry pineapple watermelon coconut peach plum",
    "tool": "hammer saw drill wrench shovel axe spade ladder broom whisk",
    "vehicle": "car bus truck bicycle boat helicopter tractor submarine taxi airplane",
    "clothing": "shirt jacket dress sock shoe hat scarf glove parka sweater",
}
CATEGORY_QUESTION = re.compile(
    r"(?:Is an? (\w+) an animal, a fruit, a tool, a vehicle or clothing\?"
    r"|Which kind of thing is an? (\w+): an animal, a fruit, a tool, a vehicle or clothing\?"
    r"|What category does the word '(\w+)' belong to: animal, fruit, tool, vehicle or clothing\?"
    r"|An? (\w+) is which of these: animal, fruit, tool, vehicle, clothing\?"
    r"|Name the category of '(\w+)' \(animal, fruit, tool, vehicle or clothing\)\.)"
    r"(?: Answer with one word\.)?"  # a near-duplicate's rewording
)


def test_category_answers_name_the_kind_and_test_words_are_unseen(stream):
    known = {w: kind for kind, words in KNOWN_KINDS.items() for w in words.split()}
    words: dict[str, set] = {"train": set(), "test": set()}
    kinds: dict[str, set] = {}
    checked = 0
    for split in ("train", "test"):
        for rec in records(stream, "category", split):
            assert "image" not in rec
            question, answer = qa(rec)
            word = next(g for g in CATEGORY_QUESTION.fullmatch(question).groups() if g)
            article = re.match(r"(?:Is |Which kind of thing is )?(an?|An?) ", question)
            if article:  # "an" before a vowel, "a" before a consonant
                assert article.group(1).lower() == ("an" if word[0] in "aeiou" else "a"), rec["id"]
            words[split].add(word)
            assert answer in KNOWN_KINDS, rec["id"]
            if rec["provenance"]["noise"] != "mislabeled":
                kinds.setdefault(word, set()).add(answer)
            if word in known:
                check(answer, known[word], rec["provenance"]["noise"] != "mislabeled", rec)
                checked += 1
    assert not words["train"] & words["test"]  # the test split asks about unseen words only
    assert all(len(k) == 1 for k in kinds.values())  # a word always answers the same kind
    assert checked >= 5


def test_text_only_near_duplicates_are_never_exact_copies(tmp_path):
    """At the full scale (600 train records, 60 near-duplicates): every near-duplicate differs from
    every other record of its split, so the pool receives as many distinct records as the card says."""
    text_only = [n for n, spec in DATASETS.items() if not spec.has_images]
    prepare_stream(tmp_path, scale="full", seed=0, datasets=text_only)
    for name in text_only:
        recs = records(tmp_path, name, "train")
        pairs = [qa(r) for r in recs]
        assert len(set(pairs)) == len(pairs), name
        assert sum(1 for r in recs if r["provenance"]["duplicate_of"]) == round(0.1 * len(recs)), name


@pytest.mark.parametrize("name", ["vqa_shape", "vqa_color", "vqa_yesno"])
def test_easy_vqa_question_answer_and_image_are_the_packages(stream, name):
    import easy_vqa

    pkg = {}
    for split in ("train", "test"):
        get_q = getattr(easy_vqa, f"get_{split}_questions")
        get_p = getattr(easy_vqa, f"get_{split}_image_paths")
        pkg[split] = (*get_q(), get_p())
    for rec, img, answer, ok in graded(stream, name):
        p = rec["provenance"]
        texts, answers, image_ids, paths = pkg[p["source_split"]]
        i = p["source_index"]
        assert qa(rec)[0] == "<image>\n" + texts[i]
        check(answer, answers[i], ok, rec)
        ref = np.asarray(Image.open(paths[image_ids[i]]).convert("RGB")).astype(np.int64)
        dy, dx = p.get("jitter", {}).get("shift_px", (0, 0))
        # Away from the border, the image is the package's, moved by the recorded jitter.
        assert np.array_equal(img[1:-1, 1:-1], ref[1 - dy : 63 - dy, 1 - dx : 63 - dx]), rec["id"]
    answers = {qa(r)[1] for r in all_records(stream, name) if r["provenance"]["noise"] is None}
    assert answers <= {
        "vqa_shape": {"circle", "rectangle", "triangle"},
        "vqa_color": {"red", "green", "blue", "black", "gray", "teal", "brown", "yellow"},
        "vqa_yesno": {"yes", "no"},
    }[name]


def test_text_reading_shows_the_word(stream):
    for rec, img, answer, ok in graded(stream, "text_reading"):
        p = rec["provenance"]
        check(answer, p["word"], ok, rec)
        bg = np.array(p["background"])
        ink = (img != bg).any(-1)
        # One ink colour, clearly more ink than a stray mark, fully inside the image.
        assert len(np.unique(img[ink], axis=0)) == 1
        assert ink.sum() >= 8 * len(p["word"])
        rows, cols = np.nonzero(ink)
        assert rows.min() > 0 and cols.min() > 0 and rows.max() < img.shape[0] - 1 and cols.max() < img.shape[1] - 1
        # Ink spans a width that grows with the word (bitmap glyphs are 4-6 px wide at scale 1).
        width = (cols.max() - cols.min() + 1) / p["scale"]
        assert 3 * len(p["word"]) <= width <= 6 * len(p["word"]), rec["id"]


def test_every_registered_dataset_is_checked_here(stream):
    assert sorted(p.name for p in stream.iterdir() if p.is_dir()) == sorted(DATASETS)


def test_text_only_answers_are_the_arithmetic_and_have_no_image(stream):
    ops = {"+": int.__add__, "plus": int.__add__, "-": int.__sub__, "minus": int.__sub__,
           "*": int.__mul__, "times": int.__mul__}
    for rec in all_records(stream, "text_only"):
        assert "image" not in rec
        question, answer = qa(rec)
        assert "<image>" not in question
        m = re.fullmatch(r"What is (\d+) (\S+) (\d+)\?", question)
        if m:
            measured = ops[m.group(2)](int(m.group(1)), int(m.group(3)))
        else:
            word = re.search(r'the word "(\w+)"', question).group(1)
            measured = len(word)
        assert measured >= 0
        check(answer, str(measured), rec["provenance"]["noise"] != "mislabeled", rec)


def test_ungrounded_images_are_noise_and_clean_images_are_not(stream):
    for name in sorted(n for n, spec in DATASETS.items() if spec.has_images):
        for rec in all_records(stream, name):
            img = pixels(stream, name, rec)
            n_colours = len(np.unique(img.reshape(-1, 3), axis=0))
            if rec["provenance"]["noise"] == "ungrounded":
                assert n_colours > 3000, rec["id"]  # 4096 uniform random pixels
            else:
                assert n_colours < 100, rec["id"]
