"""Datasets drawn from packaged image data: easy-vqa (shape, colour, yes/no) and scikit-learn digits."""
from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from lifelong.data.stream.config import StreamConfig
from lifelong.data.stream.generators.spec import (
    CardInfo,
    DatasetSpec,
    Item,
    MakeFn,
    _other,
    image_jitter,
    register,
)


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
        # Validation questions come from the package's test split too (images train never shows),
        # and their keys are the test split's, so excluding the test items keeps the two disjoint.
        source = "train" if split == "train" else "test"
        texts, answers, image_ids, paths = _easy_vqa_split(source)
        # The package's own questions whose answer is of this skill, one per (image, question text).
        candidates, seen = [], set()
        for i, (t, a, im) in enumerate(zip(texts, answers, image_ids)):
            key = f"easy_vqa/{source}/{im}/{t}"
            if a in answer_space and key not in seen and key not in exclude:
                seen.add(key)
                candidates.append((i, key))
        if n > len(candidates):
            raise ValueError(f"{name}: easy-vqa {source} has {len(candidates)} such questions unused, {n} asked for")
        chosen = rng.choice(len(candidates), size=n, replace=False)
        items = []
        for c in chosen:
            i, key = candidates[int(c)]
            truth = {
                "source": "easy_vqa",
                "source_split": source,
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
                    f"(`get_{{split}}_questions()`; a validation split, `held_out: val`, draws from the "
                    f"package's test split the questions the test split did not take), keeping the "
                    f"questions whose answer is one of: "
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
