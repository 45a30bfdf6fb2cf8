"""Per-task answer metrics: a generated answer against its reference answer(s), the registry complete.

The base metrics, the normalisation and the registry live in :mod:`lifelong.evaluation.answers`;
the benchmarks' own metrics (``vqa_accuracy``, ``vizwiz_accuracy``, ``mc_letter``, ``bbox_iou50``,
``anls``) in :mod:`lifelong.evaluation.benchmark_metrics`, which registers them when imported — as
this module does, so ``ANSWER_METRICS`` here holds every metric. :func:`score` averages one over a
batch (that average is one cell of the accuracy matrix).
"""
from __future__ import annotations

from typing import Optional, Sequence

# The registry's names, for importers of this module; benchmark_metrics registers on import.
from lifelong.evaluation import benchmark_metrics  # noqa: F401
from lifelong.evaluation.answers import (ANSWER_METRICS, References, exact_match,  # noqa: F401
                                         normalize_answer, normalize_tokens, register, token_f1)


def score(metric: str, predictions: Sequence[str], references: Sequence[References],
          questions: Optional[Sequence[Optional[str]]] = None) -> float:
    """Mean of answer metric ``metric`` over a batch; NaN for an empty batch.

    ``questions``: the prompt of each answer (``None``: no prompts), passed to the metric as ``question=``.
    """
    if metric not in ANSWER_METRICS:
        raise KeyError(f"unknown answer metric {metric!r} (known: {', '.join(sorted(ANSWER_METRICS))})")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if questions is None:
        questions = [None] * len(predictions)
    elif len(questions) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions but {len(questions)} questions")
    if not predictions:
        return float("nan")
    fn = ANSWER_METRICS[metric]
    return sum(fn(p, r, question=q) for p, r, q in zip(predictions, references, questions)) / len(predictions)
