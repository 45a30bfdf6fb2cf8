"""Columns are tasks, not datasets: which columns a run has, which cells are stale, the metrics per task."""
import json
import math

import numpy as np
import pytest

from lifelong.evaluation import metrics as M
from lifelong.evaluation.columns import HeldOut, Source, check_held_out, task_columns, task_names, versions
from lifelong.evaluation.reporting import accuracy_cells
from lifelong.evaluation.suites import SuiteConfig, suite_problems
from lifelong.layout import RunLayout

# Round 1 brings "warm" (one task); round 2 "mix" with skill_a and skill_b; round 3 "more",
# whose held-out records add questions to skill_a; the suite "bench" came at setup.
GROUPS = [HeldOut("warm", "warm", 6, 0), HeldOut("bench", "bench", 5, 0), HeldOut("skill_a", "mix", 4, 2),
          HeldOut("skill_b", "mix", 4, 2), HeldOut("skill_a", "more", 4, 3)]
SOURCES = [Source("warm", "dataset", 1, "exact_match"), Source("mix", "dataset", 2, "token_f1"),
           Source("more", "dataset", 3, "exact_match"), Source("bench", "suite", None, "exact_match")]


def test_columns_are_the_held_out_labels_in_first_arrival_order():
    cols = task_columns(GROUPS, SOURCES, taught={1: ["warm"], 2: ["skill_a", "skill_b"], 3: ["skill_a"]},
                        task_metrics={"skill_b": "exact_match"}, default_metric="exact_match")
    assert [c.task for c in cols] == task_names(GROUPS) == ["warm", "bench", "skill_a", "skill_b"]
    by = {c.task: c for c in cols}
    assert (by["skill_a"].source, by["skill_a"].sources, by["skill_a"].rounds) == ("mix", ["mix", "more"], [2, 3])
    assert by["skill_a"].metric == "token_f1"  # the dataset that brought it first
    assert by["skill_b"].metric == "exact_match"  # eval.task_metrics wins
    assert (by["bench"].kind, by["bench"].rounds, by["bench"].learned) == ("suite", [], 0)
    assert [c.learned for c in cols] == [1, 0, 2, 2]
    # A task's version: the latest round one of its questions arrived in.
    assert versions(GROUPS) == {"warm": 0, "bench": 0, "skill_a": 3, "skill_b": 2}


def test_a_round_whose_training_records_carry_a_label_teaches_it():
    cols = task_columns(GROUPS[:1], SOURCES, taught={1: ["warm"], 4: ["warm", "other"]}, task_metrics={},
                        default_metric="exact_match")
    assert cols[0].rounds == [1, 4]


def _marker(layout, t, stage, info):
    path = layout.marker(t, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))


def test_cells_measured_before_a_task_grew_are_stale_and_the_latest_measurement_counts(tmp_path):
    layout = RunLayout(tmp_path)
    _marker(layout, 0, "setup", {"row": [0.1], "tasks": ["warm"]})
    _marker(layout, 1, "eval", {"row": [0.5], "tasks": ["warm"]})
    _marker(layout, 2, "eval", {"row": [0.4, 0.3], "tasks": ["warm", "skill_a"],
                                "backfill": {"0": {"skill_a": 0.0}, "1": {"skill_a": 0.2}}})
    # Round 3 added skill_a questions; with backfill=fwt it measured rows 0 and 2 again only.
    _marker(layout, 3, "eval", {"row": [0.4, 0.6], "tasks": ["warm", "skill_a"],
                                "backfill": {"0": {"skill_a": 0.05}, "2": {"skill_a": 0.25}}})
    rows = accuracy_cells(layout, 3, versions={"warm": 0, "skill_a": 3})
    assert rows == [{"warm": 0.1, "skill_a": 0.05}, {"warm": 0.5}, {"warm": 0.4, "skill_a": 0.25},
                    {"warm": 0.4, "skill_a": 0.6}]
    # Before round 3 every cell was valid.
    assert accuracy_cells(layout, 2, versions={"warm": 0, "skill_a": 2})[1] == {"warm": 0.5, "skill_a": 0.2}
    # A suite added after round 2 (lifelong suite add) fills cells like a back-fill of round 2.
    d = layout.stage_dir(2, "suites") / "bench"
    d.mkdir(parents=True)
    (d / "done").write_text(json.dumps({"suite": "bench", "backfill": {"0": {"bench": 0.7}, "1": {"bench": 0.8},
                                                                         "2": {"bench": 0.9}}}))
    rows = accuracy_cells(layout, 3, versions={"warm": 0, "skill_a": 3, "bench": 2})
    assert [r.get("bench") for r in rows] == [0.7, 0.8, 0.9, None]


def test_a_held_out_split_without_questions_or_a_column_named_after_a_mixed_dataset_is_an_error():
    with pytest.raises(ValueError, match=r"dataset 'empty'.*no valid question.*3 record\(s\) quarantined"):
        check_held_out("empty", "dataset", "empty/test.jsonl", GROUPS, {}, quarantined=3)
    with pytest.raises(ValueError, match="the task labels skill_a, skill_b: the column 'mix' would have no question"):
        check_held_out("mix", "dataset", "mix/test.jsonl", GROUPS, {"mix": "token_f1"})
    check_held_out("mix", "dataset", "mix/test.jsonl", GROUPS, {"skill_a": "token_f1"})  # fine


def test_suite_names_must_be_their_own():
    ok = SuiteConfig("bench", "/x/bench.jsonl")
    assert suite_problems([ok], ["warm"]) == []
    problems = suite_problems([ok, SuiteConfig("bench", "/y"), SuiteConfig("warm", ""), SuiteConfig("a b", "/z", "nope")],
                              ["warm"])
    text = "\n".join(problems)
    assert "appears twice" in text and "is a dataset of the run" in text and "path: empty" in text
    assert "not a suite name" in text and "unknown answer metric 'nope'" in text


# ---- metrics with the round that taught each task -----------------------------------------
def test_metrics_default_to_one_task_per_round():
    a = np.array([[0.1, 0.2, 0.0], [0.8, 0.3, 0.1], [0.6, 0.9, 0.2], [0.5, 0.7, 0.9]])
    for name in M.METRICS:
        assert M.METRICS[name].fn(a, np.ones(3), None) == pytest.approx(M.METRICS[name].fn(a, np.ones(3)), nan_ok=True)
        got = M.METRICS[name].fn(a, np.ones(3), [1, 2, 3])
        want = M.METRICS[name].fn(a, np.ones(3))
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)


def test_metrics_with_a_two_skill_round_and_a_suite():
    # Columns: warm (round 1), skill_a and skill_b (both round 2), bench (a suite, no round).
    a = np.array([
        [0.1, 0.0, 0.2, 0.5],  # before training
        [0.8, 0.1, 0.2, 0.6],  # after round 1
        [0.6, 0.9, 0.7, 0.4],  # after round 2
        [0.5, 0.7, 0.9, 0.3],  # after round 3 (a dataset with no new task)
    ])
    learned = [1, 2, 2, 0]
    assert M.average_accuracy_at(a, 0, learned) != M.average_accuracy_at(a, 0, learned)  # NaN: nothing seen
    assert M.average_accuracy_at(a, 1, learned) == pytest.approx((0.8 + 0.6) / 2)
    assert M.average_accuracy(a, None, learned) == pytest.approx((0.5 + 0.7 + 0.9 + 0.3) / 4)
    # Forgetting over tasks taught before the last round (and the suite): best earlier row minus now.
    assert M.forgetting(a, None, learned) == pytest.approx(np.mean([0.8 - 0.5, 0.9 - 0.7, 0.7 - 0.9, 0.6 - 0.3]))
    # BWT: now minus just after its own round; the suite has none.
    assert M.backward_transfer(a, None, learned) == pytest.approx(np.mean([0.5 - 0.8, 0.7 - 0.9, 0.9 - 0.7]))
    # FWT: just before its round minus the base model; round-1 tasks and the suite have none.
    assert M.forward_transfer(a, None, learned) == pytest.approx(np.mean([0.1 - 0.0, 0.2 - 0.2]))
    assert M.learning_accuracy(a, None, learned) == pytest.approx(np.mean([0.8, 0.9, 0.7]))
    ref = np.array([1.0, 1.0, 1.0, 0.5])
    assert M.relative_gain(a, ref, learned) == pytest.approx(100 * (0.5 + 0.7 + 0.9 + 0.3) / 3.5)
    # After round 1 only warm and the suite are seen.
    assert M.relative_gain(a[:2], ref, learned) == pytest.approx(100 * (0.8 + 0.6) / 1.5)
    series = M.per_round("avg_acc", a, learned=learned)
    assert np.isnan(series[0]) and series[2] == pytest.approx(np.mean([0.6, 0.9, 0.7, 0.4]))


def test_the_dashboard_groups_columns_by_source_and_outlines_every_round_that_taught_a_task():
    import re

    from lifelong.evaluation.dashboard import render_dashboard
    from lifelong.evaluation.history import RoundRecord, RunHistory, TaskColumn

    cols = [TaskColumn("warm", "warm", rounds=[1], sources=["warm"]),
            TaskColumn("skill_a", "mix", rounds=[2, 3], sources=["mix", "more"]),
            TaskColumn("skill_b", "mix", rounds=[2], sources=["mix"]),
            TaskColumn("bench", "bench", kind="suite", sources=["bench"])]
    h = RunHistory(run="r", strategy="adapt_inf", tasks=[c.task for c in cols], columns=cols)
    for t in range(4):
        h.set_accuracy_row(t, [0.1 * t, 0.2, 0.3, 0.4])
    for t, d in enumerate(["warm", "mix", "more"], start=1):
        h.set_round(RoundRecord(round=t, dataset=d))
    html = render_dashboard([h])
    heat = html[html.index('id="heatmap-0"'):]
    heat = heat[:heat.index("</svg>")]
    # One band per source, in column order: warm, mix (two columns), bench (a suite).
    assert re.findall(r'data-source="([^"]+)" data-kind="([^"]+)"', heat) == [
        ("warm", "dataset"), ("mix", "dataset"), ("bench", "suite")]
    outlined = re.findall(r'stroke="#d62728"[^>]*><title>([^<]+) after ([^:]+):', heat)
    assert sorted(outlined) == sorted([("warm", "round 1"), ("skill_a", "round 2"), ("skill_a", "round 3"),
                                       ("skill_b", "round 2")])
    assert "taught in rounds 2, 3" in heat
    assert "none (evaluated only)" in html  # the suite's row of the task table
