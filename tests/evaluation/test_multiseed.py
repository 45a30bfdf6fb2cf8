"""Results over seeds: pooled accuracy, point estimates and the seed x question bootstrap, by hand."""
import numpy as np
import pytest

from lifelong.evaluation.bootstrap import interval
from lifelong.evaluation.multiseed import (group, load_results, metrics_of, point_estimates, pooled_accuracy,
                                           save_result, score_tensor, seed_question_bootstrap)


def _result(strategy, seed, final_a, final_b, before=0.0):
    """Two tasks (a: 4 questions, b: 2), rounds 0..2; the final row's scores as given."""
    return {"version": 1, "strategy": strategy, "seed": seed, "config_sha": "x", "tasks": ["a", "b"],
            "questions": {"a": ["a0", "a1", "a2", "a3"], "b": ["b0", "b1"]},
            "scores": {"a": [[before] * 4, [1.0] * 4, final_a], "b": [[before] * 2, [before] * 2, final_b]},
            "costs": {}}


def test_pooled_accuracy_counts_questions_not_tasks():
    res = _result("x", 0, [1.0, 1.0, 1.0, 0.0], [1.0, 0.0])
    scores = score_tensor(res)
    assert pooled_accuracy(scores, 2, 2) == pytest.approx(4 / 6)  # (3 + 1) correct of 6 questions
    m = metrics_of(scores)
    assert m["avg_acc"] == pytest.approx((0.75 + 0.5) / 2)  # per-task mean differs from pooled
    assert m["pooled_acc"] == pytest.approx(4 / 6)
    assert m["forgetting"] == pytest.approx(1.0 - 0.75)  # task a: best 1.0 after round 1, 0.75 at the end
    # Diagonal: task a after round 1 = 1.0, task b after round 2 = 0.5; learning acc = their mean.
    assert (m["diag.0"], m["diag.1"]) == (1.0, 0.5) and m["learning_acc"] == pytest.approx(0.75)


def test_the_diagonal_over_seeds_and_its_absence_for_an_end_only_run():
    by = {"x": [_result("x", 0, [1.0] * 4, [1.0, 0.0]), _result("x", 1, [1.0] * 4, [0.0, 0.0])]}
    p = point_estimates(by)["x"]
    assert (p["diag.0"], p["diag.1"]) == (1.0, 0.25) and p["learning_acc"] == pytest.approx(0.625)
    # Resampled: seed 1 always gives 0 for b; seed 0 gives 0, 0.5 or 1 (its two questions redrawn, the
    # same draw for both copies of it), so a mean over two drawn seeds is one of 0, 0.25, 0.5 and 1.
    draws = seed_question_bootstrap(by, n=400, seed=0)
    assert np.all(draws["x"]["diag.0"] == 1.0)
    assert set(np.round(draws["x"]["diag.1"], 6)) == {0.0, 0.25, 0.5, 1.0}
    # Trained once at the end (multitask): rows between 0 and the last not evaluated -> no diagonal.
    end = _result("m", 0, [1.0] * 4, [1.0] * 2)
    end["scores"]["a"][1] = [None] * 4
    end["scores"]["b"][1] = [None] * 2
    m = metrics_of(score_tensor(end))
    assert np.isnan(m["learning_acc"]) and np.isnan(m["diag.0"]) and np.isnan(m["diag.1"])


def test_seed_bootstrap_by_hand(tmp_path):
    # Seed 0 answers everything right at the end, seed 1 nothing: the mean over seeds is 0.5, and a
    # resample of two seeds gives 1, 0.5 or 0 with probabilities 1/4, 1/2, 1/4 (questions do not matter).
    for r in (_result("x", 0, [1.0] * 4, [1.0] * 2), _result("x", 1, [0.0] * 4, [0.0] * 2),
              _result("y", 0, [1.0] * 4, [1.0] * 2), _result("y", 1, [0.0] * 4, [0.0] * 2)):
        save_result(r, tmp_path)
    by = group(load_results(tmp_path))
    assert list(by) == ["x", "y"] and [r["seed"] for r in by["x"]] == [0, 1]
    assert point_estimates(by)["x"]["avg_acc"] == pytest.approx(0.5)
    draws = seed_question_bootstrap(by, n=4000, seed=0)
    d = draws["x"]["avg_acc"]
    assert set(np.round(d, 6)) == {0.0, 0.5, 1.0}
    assert abs(np.mean(d == 0.5) - 0.5) < 0.03 and abs(np.mean(d == 1.0) - 0.25) < 0.03
    assert interval(d) == (0.0, 1.0)
    # Same seeds -> the same seed draws: identical strategies differ by exactly 0 in every resample.
    assert np.all(draws["x"]["avg_acc"] - draws["y"]["avg_acc"] == 0.0)


def test_results_on_other_questions_cannot_be_compared():
    a = _result("x", 0, [1.0] * 4, [1.0] * 2)
    b = _result("y", 0, [1.0] * 4, [1.0] * 2)
    b["questions"]["b"] = ["b0", "b9"]
    with pytest.raises(ValueError, match="other tasks or questions"):
        seed_question_bootstrap({"x": [a], "y": [b]}, n=10)
