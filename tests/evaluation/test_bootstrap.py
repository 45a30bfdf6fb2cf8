"""Paired bootstrap of the CL metrics over held-out questions."""
import json
from pathlib import Path

import numpy as np
import pytest

from lifelong.evaluation.bootstrap import interval, paired_bootstrap
from lifelong.evaluation.history import RoundRecord, RunHistory, save_history


def _run(root: Path, name: str, scores: list[dict[str, list[float]]], tasks=("a", "b")) -> Path:
    """A run dir whose round t answered question q of task x with score scores[t][x][q]."""
    d = root / name
    h = RunHistory(run=name, strategy="x", tasks=list(tasks))
    for t, per_task in enumerate(scores):
        path = d / "rounds" / "0" / "setup" if t == 0 else d / "rounds" / str(t) / "eval"
        path.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"task": x, "id": f"{x}/{q:03d}", "score": s, "correct": s == 1.0})
                 for x in tasks for q, s in enumerate(per_task[x])]
        (path / "predictions.jsonl").write_text("\n".join(lines) + "\n")
        h.set_accuracy_row(t, [float(np.mean(per_task[x])) for x in tasks])
        if t:
            h.set_round(RoundRecord(round=t, dataset=tasks[t - 1]))
    save_history(h, d)
    return d


def test_interval_matches_the_binomial_width_and_identical_runs_differ_by_zero(tmp_path):
    rng = np.random.default_rng(1)
    half = [float(x) for x in rng.permutation([1.0] * 200 + [0.0] * 200)]
    rows = [{"a": [0.0] * 400, "b": [0.0] * 400}, {"a": half, "b": [0.0] * 400}, {"a": half, "b": [1.0] * 400}]
    one = _run(tmp_path, "one", rows)
    two = _run(tmp_path, "two", rows)
    draws = paired_bootstrap({"one": one, "two": two}, n=2000, seed=0)
    # Final avg acc = (0.5 + 1.0) / 2; only task a varies: sd = sqrt(.25 / 400) / 2 = 0.0125 -> 95% half-width 0.0245.
    lo, hi = interval(draws["one"]["avg_acc"])
    assert lo < 0.75 < hi
    assert 0.020 < (hi - lo) / 2 < 0.029
    # Forgetting: task a stayed at 0.5, so exactly 0 in every resample.
    assert np.all(draws["one"]["forgetting"] == 0.0)
    # Paired: the same resamples for both runs, so identical runs differ by exactly 0.
    assert np.all(draws["one"]["avg_acc"] - draws["two"]["avg_acc"] == 0.0)


def test_runs_on_other_questions_cannot_be_paired(tmp_path):
    one = _run(tmp_path, "one", [{"a": [0.0, 1.0], "b": [1.0]}, {"a": [1.0, 1.0], "b": [1.0]}, {"a": [1.0, 1.0], "b": [0.0]}])
    other = tmp_path / "other"
    _run(tmp_path, "other", [{"a": [0.0, 1.0], "b": [1.0]}, {"a": [1.0, 1.0], "b": [1.0]}, {"a": [1.0, 1.0], "b": [0.0]}])
    p = other / "rounds/2/eval/predictions.jsonl"
    p.write_text(p.read_text().replace('"a/001"', '"a/777"'))
    with pytest.raises(ValueError, match="answered other a questions"):
        paired_bootstrap({"one": one, "other": other}, n=10)
