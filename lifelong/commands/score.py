"""``lifelong score``: score a JSONL file of answers with any registered answer metric.

Each line is one answer: ``{"prediction": str, "answers": [str, ...]}`` (the
references, e.g. VQAv2's ten human answers; items may also be
``{"answer": str}`` objects, as in the VQA annotation files) or
``{"prediction": str, "answer": str}``; an optional ``"question"`` is the
prompt (``mc_letter`` reads the options there). A number is read as its
text; a list of exactly four numbers is one grounding box, not four answers. Other keys are ignored; blank lines are
skipped. The last line printed is ``MEAN N``: the metric's mean over the
answers and their count, so another model's outputs are scored exactly as a
run scores its own. Exit status 2 on a user error (unknown metric, unreadable
file, a bad line — named by its line number), with a one-line ``error: …``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

from lifelong.evaluation.scoring import ANSWER_METRICS, score

from lifelong.commands import EXIT_USER


class ScoreInputError(ValueError):
    """A predictions file the command cannot score; the message names the line."""


def setup(p) -> None:
    p.add_argument("--metric", required=True, help=f"answer metric: {', '.join(sorted(ANSWER_METRICS))}")
    p.add_argument("--predictions", required=True, type=Path,
                   help="JSONL: one {prediction, answers | answer[, question]} object per line")


def _reference(value, where: str) -> str:
    if isinstance(value, dict) and isinstance(value.get("answer"), str):
        return value["answer"]
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # a count given as a number
    raise ScoreInputError(f"{where}: each answer must be a string or an {{\"answer\": string}} object, got {value!r}")


def parse_record(rec, where: str) -> tuple[str, list[str], Optional[str]]:
    """(prediction, references, question) of one decoded line; ``where`` names the line in errors."""
    if not isinstance(rec, dict):
        raise ScoreInputError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    if "prediction" not in rec:
        raise ScoreInputError(f"{where}: no \"prediction\"")
    pred = rec["prediction"]
    if not isinstance(pred, str):
        raise ScoreInputError(f"{where}: \"prediction\" must be a string, got {json.dumps(pred)}")
    if "answers" in rec:
        answers = rec["answers"]
    elif "answer" in rec:
        answers = rec["answer"]
    else:
        raise ScoreInputError(f"{where}: no \"answers\" (list) or \"answer\" (string)")
    if isinstance(answers, list) and len(answers) == 4 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in answers):
        answers = [json.dumps(answers)]  # one box [x1, y1, x2, y2], not four answers
    if not isinstance(answers, list):
        answers = [answers]
    if not answers:
        raise ScoreInputError(f"{where}: \"answers\" is empty")
    refs = [_reference(a, where) for a in answers]
    question = rec.get("question")
    if question is not None and not isinstance(question, str):
        raise ScoreInputError(f"{where}: \"question\" must be a string")
    return pred, refs, question


def read_predictions(path: Path) -> tuple[list[str], list[list[str]], list[Optional[str]]]:
    """Predictions, references and questions of every non-blank line of a JSONL file."""
    preds, refs, questions = [], [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path} line {lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ScoreInputError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
            p, r, q = parse_record(rec, where)
            preds.append(p)
            refs.append(r)
            questions.append(q)
    if not preds:
        raise ScoreInputError(f"{path}: no answers to score (the file is empty)")
    return preds, refs, questions


def run(args) -> int:
    """Print the mean of ``--metric`` over ``--predictions`` as ``MEAN N`` on the last line."""
    if args.metric not in ANSWER_METRICS:
        print(f"error: unknown answer metric {args.metric!r} (known: {', '.join(sorted(ANSWER_METRICS))})",
              file=sys.stderr)
        return EXIT_USER
    try:
        preds, refs, questions = read_predictions(args.predictions)
    except ScoreInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER
    except (OSError, UnicodeDecodeError) as e:
        print(f"error: cannot read {args.predictions}: {e.strerror if isinstance(e, OSError) else e}",
              file=sys.stderr)
        return EXIT_USER
    mean = score(args.metric, preds, refs, questions)
    print(f"{args.metric} over {len(preds)} answers in {args.predictions}")
    print(f"{mean:.6f} {len(preds)}")
    return 0
