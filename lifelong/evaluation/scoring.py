"""Per-task answer metrics: a generated answer against its reference answer(s).

Each metric is ``fn(prediction: str, references: list[str]) -> float`` in
``[0, 1]``; with several references the best match counts. A task's config
names its metric; :data:`ANSWER_METRICS` maps names to functions and
:func:`score` averages a metric over a batch (that average is one cell of the
accuracy matrix).

Normalisation (shared by both metrics), in this order:

1. lowercase;
2. apostrophes are deleted (``don't`` -> ``dont``); every other punctuation
   character becomes a space (``red-circle`` -> ``red circle``), except a
   ``.`` or ``,`` between two digits, which stays (``3.5``, ``1,000``);
3. tokens are split on whitespace; number words ``zero`` .. ``twenty`` become
   digits (``two`` -> ``2``); the articles ``a``, ``an``, ``the`` are removed.

The tokens joined by single spaces are the normalised answer.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from typing import Callable, Sequence, Union

NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
).split()
_NUMBER = {w: str(i) for i, w in enumerate(NUMBER_WORDS)}
_ARTICLES = frozenset({"a", "an", "the"})
_APOSTROPHES = "'\u2019\u2018`"
# ASCII punctuation plus the typographic quotes/dashes a model may emit.
_PUNCT = (set(string.punctuation) | set("\u201c\u201d\u2013\u2014\u2026\u00bf\u00a1")) - set(_APOSTROPHES)
_KEEP_BETWEEN_DIGITS = re.compile(r"(?<=\d)[.,](?=\d)")
_SENTINEL = "\x00"

References = Union[str, Sequence[str]]


def normalize_tokens(text: str) -> list[str]:
    """The normalised tokens of ``text`` (see the module docstring)."""
    text = text.lower()
    for ch in _APOSTROPHES:
        text = text.replace(ch, "")
    # Protect decimal points / thousands separators, then blank all other punctuation.
    text = _KEEP_BETWEEN_DIGITS.sub(lambda m: _SENTINEL if m.group() == "." else _SENTINEL * 2, text)
    text = "".join(" " if ch in _PUNCT else ch for ch in text)
    text = text.replace(_SENTINEL * 2, ",").replace(_SENTINEL, ".")
    out = []
    for tok in text.split():
        tok = _NUMBER.get(tok, tok)
        if tok not in _ARTICLES:
            out.append(tok)
    return out


def normalize_answer(text: str) -> str:
    """Normalised answer string: tokens of :func:`normalize_tokens` joined by one space."""
    return " ".join(normalize_tokens(text))


def _as_list(references: References) -> list[str]:
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise ValueError("an answer needs at least one reference")
    return refs


ANSWER_METRICS: dict[str, Callable[[str, References], float]] = {}


def register(name: str):
    """Decorator registering an answer metric ``fn(prediction, references) -> float``."""

    def deco(fn):
        if name in ANSWER_METRICS:
            raise ValueError(f"answer metric {name!r} is registered twice")
        ANSWER_METRICS[name] = fn
        return fn

    return deco


@register("exact_match")
def exact_match(prediction: str, references: References) -> float:
    """1.0 when the normalised prediction equals a normalised reference, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(r) for r in _as_list(references)))


def _f1(pred: list[str], gold: list[str]) -> float:
    if not pred or not gold:
        # Both empty counts as a match; one empty and not the other as a miss.
        return float(pred == gold)
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


@register("token_f1")
def token_f1(prediction: str, references: References) -> float:
    """SQuAD-style token F1 of the normalised tokens (multiset overlap), best over references."""
    pred = normalize_tokens(prediction)
    return max(_f1(pred, normalize_tokens(r)) for r in _as_list(references))


def score(metric: str, predictions: Sequence[str], references: Sequence[References]) -> float:
    """Mean of answer metric ``metric`` over a batch; NaN for an empty batch."""
    if metric not in ANSWER_METRICS:
        raise KeyError(f"unknown answer metric {metric!r} (known: {', '.join(sorted(ANSWER_METRICS))})")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        return float("nan")
    fn = ANSWER_METRICS[metric]
    return sum(fn(p, r) for p, r in zip(predictions, references)) / len(predictions)
