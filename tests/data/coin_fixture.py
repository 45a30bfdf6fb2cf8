"""A tiny CoIN-shaped dataset: CoIN's file layout and field names, a few records per task, images drawn with PIL.

Layout (as CoIN's scripts read it, relative to the folder they run in)::

    playground/Instructions_Original/<Task>/train.json    LLaVA conversations: id, image, conversations
    playground/Instructions_Original/<Task>/test.json     question file: question_id, image, text, answer
        (val.json for TextVQA, VizWiz and VQAv2)           (Grounding also answer_bbox and size)
    cl_dataset/<source folders>/...                       images; the files' paths are relative to cl_dataset
"""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

SHORT = "Answer the question using a single word or phrase."
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 30, 220), "yellow": (230, 220, 20)}

# Task -> (held-out file, image path of record i, question of record i, answer of record i), CoIN's order.
TASKS = {
    "ScienceQA": ("test.json", lambda s, i: f"ScienceQA/{s}/{i}/image.png",
                  lambda c: f"Which colour fills the image?\nA. {c}\nB. grey\n"
                            "Answer with the option's letter from the given choices directly.",
                  lambda c: "A"),
    "TextVQA": ("val.json", lambda s, i: f"TextVQA/{'train' if s == 'train' else 'test'}_images/{s}{i:05d}.jpg",
                lambda c: f"What colour is the sign?\n{SHORT}", lambda c: c),
    "ImageNet": ("test.json", lambda s, i: f"ImageNet/{s}/n0144{i:04d}/n0144{i:04d}_{i}.JPEG",
                 lambda c: f"What is the object in the image?\n{SHORT}", lambda c: f"{c} square"),
    "GQA": ("test.json", lambda s, i: f"GQA/images/{s}{i}.jpg", lambda c: f"What colour is the square?\n{SHORT}",
            lambda c: c),
    "VizWiz": ("val.json", lambda s, i: f"VizWiz/{s}/VizWiz_{s}_{i:08d}.jpg",
               lambda c: "What colour is this?\nWhen the provided information is insufficient, respond with "
                         f"'Unanswerable'.\n{SHORT}", lambda c: c),
    "Grounding": ("test.json", lambda s, i: f"COCO2014/train2014/COCO_train2014_{s}{i:09d}.jpg",
                  lambda c: f"Please provide the bounding box coordinate of the region this sentence describes: "
                            f"{c} square.", lambda c: "[0.25, 0.25, 0.75, 0.75]"),
    "VQAv2": ("val.json", lambda s, i: f"COCO2014/val2014/COCO_val2014_{s}{i:09d}.jpg",
              lambda c: f"Is the square {c}?\n{SHORT}", lambda c: "yes"),
    "OCRVQA": ("test.json", lambda s, i: f"OCR-VQA/images/{s}{i}.jpg", lambda c: f"Who wrote this book?\n{SHORT}",
               lambda c: f"{c} author"),
}
INSTRUCTIONS = Path("playground/Instructions_Original")
IMAGES = Path("cl_dataset")


def _image(path: Path, colour: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", (40, 40), (128, 128, 128))
    ImageDraw.Draw(im).rectangle([10, 10, 29, 29], fill=COLOURS[colour])
    im.save(path, "PNG" if path.suffix == ".png" else "JPEG")


def write_coin(root: Path, n_train: int = 8, n_test: int = 3) -> dict[str, dict[str, int]]:
    """Write the fixture under ``root``; returns each task's record counts ``{"train": n, "test": n}``."""
    root = Path(root)
    colours = list(COLOURS)
    for task, (held_out, image_of, question_of, answer_of) in TASKS.items():
        folder = root / INSTRUCTIONS / task
        folder.mkdir(parents=True, exist_ok=True)
        train = []
        for i in range(n_train):
            c, image = colours[i % len(colours)], image_of("train", i)
            _image(root / IMAGES / image, c)
            train.append({"id": f"{task}-train-{i}", "image": image, "conversations": [
                {"from": "human", "value": f"<image>\n{question_of(c)}"},
                {"from": "gpt", "value": answer_of(c)}]})
        test = []
        for i in range(n_test):
            c, image = colours[(i + 1) % len(colours)], image_of("test", i)
            _image(root / IMAGES / image, c)
            rec = {"question_id": f"{task}-test-{i}", "image": image, "text": question_of(c), "answer": answer_of(c)}
            if task == "Grounding":  # CoIN's Grounding test files give the box and the image size
                rec = {**rec, "answer_bbox": answer_of(c), "size": [40, 40]}
            test.append(rec)
        (folder / "train.json").write_text(json.dumps(train, indent=1))
        (folder / held_out).write_text(json.dumps(test, indent=1))
    return {task: {"train": n_train, "test": n_test} for task in TASKS}
