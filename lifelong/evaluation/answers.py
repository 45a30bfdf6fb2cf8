"""Answer metrics, the base: normalisation, the registry, ``exact_match`` and ``token_f1``.

The registry is complete only once :mod:`lifelong.evaluation.scoring` is imported (it brings the
benchmarks' metrics too); consumers use that module.


Each metric is ``fn(prediction: str, references, question: str | None = None)
-> float`` in ``[0, 1]``; ``references`` is one string or a list of them (with
several, the best match counts unless the metric says otherwise) and
``question`` is the prompt the answer replies to, for metrics that read it
(``mc_letter`` finds the options there); the others ignore it. A task's config
names its metric; :data:`ANSWER_METRICS` maps names to functions and
:func:`score` averages a metric over a batch (that average is one cell of the
accuracy matrix). The benchmarks' own metrics (``vqa_accuracy``,
``vizwiz_accuracy``, ``mc_letter``, ``bbox_iou50``, ``anls``) live in
:mod:`lifelong.evaluation.benchmark_metrics` and register here.

Normalisation of ``exact_match`` and ``token_f1``, in this order:

1. lowercase;
2. apostrophes are deleted (``don't`` -> ``dont``); every other punctuation
   character becomes a space (``red-circle`` -> ``red circle``), except a
   ``.`` or ``,`` between two digits, which stays (``3.5``, ``1,000``);
3. tokens are split on whitespace; number words ``zero`` .. ``twenty`` become
   digits (``two`` -> ``2``); the articles ``a``, ``an``, ``the`` are removed,
   unless every token is an article: then the answer *is* the word and stays
   whole (``A`` -> ``a``, the multiple-choice option, not the empty answer).

The tokens joined by single spaces are the normalised answer. So an empty
prediction (or one of punctuation only) matches only a reference that
normalises to nothing too: it scores 0 against ``A`` as against any answer.
"""
from __future__ import annotations

import inspect
import re
import string
from collections import Counter
from typing import Callable, Optional, Sequence, Union

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
    tokens = [_NUMBER.get(tok, tok) for tok in text.split()]
    # An answer made of articles only is the word itself (option "A"); dropping it would leave "".
    return [tok for tok in tokens if tok not in _ARTICLES] or tokens


def normalize_answer(text: str) -> str:
    """Normalised answer string: tokens of :func:`normalize_tokens` joined by one space."""
    return " ".join(normalize_tokens(text))


def _as_list(references: References) -> list[str]:
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise ValueError("an answer needs at least one reference")
    return refs


ANSWER_METRICS: dict[str, Callable[..., float]] = {}


def register(name: str):
    """Decorator registering an answer metric ``fn(prediction, references, question=None) -> float``."""

    def deco(fn):
        if name in ANSWER_METRICS:
            raise ValueError(f"answer metric {name!r} is registered twice")
        if "question" not in inspect.signature(fn).parameters:
            raise TypeError(f"answer metric {name!r} must accept a question= argument (it may ignore it)")
        ANSWER_METRICS[name] = fn
        return fn

    return deco


@register("exact_match")
def exact_match(prediction: str, references: References, question: Optional[str] = None) -> float:
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
def token_f1(prediction: str, references: References, question: Optional[str] = None) -> float:
    """SQuAD-style token F1 of the normalised tokens (multiset overlap), best over references."""
    pred = normalize_tokens(prediction)
    return max(_f1(pred, normalize_tokens(r)) for r in _as_list(references))
