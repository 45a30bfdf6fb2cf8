"""Run history: JSON + CSV on disk, round trips, runs in progress."""
import json
import math

import numpy as np
import pytest

from lifelong.evaluation.history import (
    HISTORY_FILE,
    MATRIX_FILE,
    METRICS_FILE,
    ClusterRecord,
    RoundRecord,
    RunHistory,
    load_history,
    read_accuracy_csv,
    save_history,
    save_metrics,
)

TASKS = ["digits", 'a,"quoted" task', "<b>vqa</b>"]


def _history() -> RunHistory:
    h = RunHistory(run="r1", strategy="adapt_inf", tasks=list(TASKS))
    h.set_accuracy_row(0, [0.1, 0.2, float("nan")])
    h.set_accuracy_row(1, [0.9, 0.25, 0.3])
    h.set_round(
        RoundRecord(
            round=1, dataset="digits", pool_size=1200, selected=300, pruned=0,
            train_loss=[[1, 2.5], [2, 2.0]], stage_seconds={"sketch": 1.5, "train": 10.0},
            clusters=[ClusterRecord(id=0, size=120, expert="el2n", entropy=4.1, selected=40), ClusterRecord(id=1, size=80, expert="ppl")],
        )
    )
    return h


def test_round_trip_json_and_csv(tmp_path):
    h = _history()
    path = save_history(h, tmp_path)
    assert path == tmp_path / HISTORY_FILE
    data = json.loads(path.read_text())
    assert data["accuracy"][0] == [0.1, 0.2, None]  # NaN is stored as null (strict JSON)
    assert data["rounds"][0]["clusters"][1]["entropy"] is None
    back = load_history(tmp_path)
    assert back.tasks == TASKS and back.run == "r1" and back.strategy == "adapt_inf"
    np.testing.assert_array_equal(back.accuracy_matrix(), h.accuracy_matrix())
    assert back.rounds[0].clusters[0].expert == "el2n" and back.rounds[0].clusters[0].selected == 40
    assert math.isnan(back.rounds[0].clusters[1].entropy)
    assert back.rounds[0].train_loss == [[1.0, 2.5], [2.0, 2.0]]

    csv_text = (tmp_path / MATRIX_FILE).read_text()
    assert csv_text.splitlines()[0] == 'round,digits,"a,""quoted"" task",<b>vqa</b>'
    assert csv_text.splitlines()[1] == "0,0.1,0.2,"
    tasks, m = read_accuracy_csv(tmp_path / MATRIX_FILE)
    assert tasks == TASKS
    np.testing.assert_array_equal(m, h.accuracy_matrix())


def test_run_in_progress_and_updates(tmp_path):
    h = _history()  # 3 tasks, only rounds 0..1 evaluated
    assert h.accuracy_matrix().shape == (2, 3)
    h.set_accuracy_row(3, [0.5, 0.6, 0.7])  # a gap (round 2 missing) becomes an unevaluated row
    assert h.accuracy_matrix().shape == (4, 3) and np.isnan(h.accuracy_matrix()[2]).all()
    h.set_round(RoundRecord(round=1, dataset="digits", pool_size=999))  # a resumed round replaces its record
    assert len(h.rounds) == 1 and h.rounds[0].pool_size == 999
    save_history(h, tmp_path)
    assert load_history(tmp_path).accuracy_matrix().shape == (4, 3)
    with pytest.raises(ValueError):
        h.set_accuracy_row(0, [0.1])


def test_csv_only_fallback_and_errors(tmp_path):
    save_history(_history(), tmp_path)
    (tmp_path / HISTORY_FILE).unlink()
    h = load_history(tmp_path)
    assert h.run == tmp_path.name and h.tasks == TASKS and h.accuracy_matrix().shape == (2, 3)
    with pytest.raises(FileNotFoundError):
        load_history(tmp_path / "nothing")
    bad = tmp_path / "bad"
    (bad / "metrics").mkdir(parents=True)
    (bad / HISTORY_FILE).write_text(json.dumps({"run": "x", "strategy": "s", "tasks": ["a"], "colour": 1}))
    with pytest.raises(ValueError, match="colour"):
        load_history(bad)
    (bad / HISTORY_FILE).write_text(json.dumps({"run": "x", "strategy": "s", "tasks": ["a"], "accuracy": [[0.1, 0.2]]}))
    with pytest.raises(ValueError, match="row 0"):
        load_history(bad)


def test_save_metrics(tmp_path):
    h = _history()
    # After round 1: avg_acc = a[1,0] = 0.9; relative gain = 0.9 / 0.9 * 100 = 100; FWT = a[1,1] - a[0,1] = 0.05.
    path = save_metrics(h, tmp_path, reference=np.array([0.9, 1.0, 1.0]))
    assert path == tmp_path / METRICS_FILE
    data = json.loads(path.read_text())
    assert data["final"]["avg_acc"] == pytest.approx(0.9)
    assert data["final"]["relative_gain"] == pytest.approx(100.0)
    assert data["final"]["fwt"] == pytest.approx(0.05)
    assert data["final"]["forgetting"] is None and data["per_round"]["avg_acc"] == [None, pytest.approx(0.9)]
    empty = RunHistory(run="e", strategy="s", tasks=["a"])
    assert json.loads(save_metrics(empty, tmp_path / "e").read_text())["final"]["avg_acc"] is None
