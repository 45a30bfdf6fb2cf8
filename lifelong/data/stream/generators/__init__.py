"""The datasets of the built-in stream: one registered ``DatasetSpec`` each.

``spec`` holds the registry; the generators live by kind: ``vqa`` (easy-vqa,
digits), ``scenes`` (counting, spatial, position, size) and ``text`` (text reading,
text-only questions, number comparison, word categories). Importing this package registers them all.
"""
# Importing the kind modules registers their datasets.
from lifelong.data.stream.generators.scenes import corner_of, relation_of
from lifelong.data.stream.generators.spec import DATASETS, CardInfo, DatasetSpec, Item, MakeFn, get_spec, register
from lifelong.data.stream.generators.text import text_only_answer
from lifelong.data.stream.generators.vqa import digit_image

__all__ = [
    "DATASETS",
    "CardInfo",
    "DatasetSpec",
    "Item",
    "MakeFn",
    "corner_of",
    "digit_image",
    "get_spec",
    "register",
    "relation_of",
    "text_only_answer",
]
