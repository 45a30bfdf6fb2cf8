"""A CL metric registered once reaches every consumer: results over seeds, the paired bootstrap, the model
card and the comparison's table. Nothing outside lifelong/evaluation/metrics.py names a metric."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from lifelong.evaluation import metrics as M
from lifelong.evaluation.bootstrap import paired_bootstrap
from lifelong.evaluation.history import RoundRecord, RunHistory, save_history
from lifelong.evaluation.multiseed import metrics_of, point_estimates, score_tensor, seed_question_bootstrap
from lifelong.export.cards import model_card


def final_first(a, reference=None, learned=None) -> float:
    """Accuracy on the first task after the last round (a throwaway metric for this test)."""
    m = np.asarray(a, dtype=float)
    return float(m[-1, 0]) if m.shape[0] > 1 else float("nan")


@pytest.fixture
def throwaway(monkeypatch):
    """``final_first`` registered as a headline metric with its interval, for this test only."""
    monkeypatch.setitem(M.METRICS, "final_first", M.Metric(
        "final_first", final_first, description="Accuracy on the first task after the last round",
        headline=True, label="First task, final", short="first final", interval=True, hub_id="final_first"))
    return "final_first"


def _result(seed: int, final_a: list[float]) -> dict:
    """Two tasks (a: 4 questions, b: 2), rounds 0..2, as a result file holds them."""
    return {"version": 1, "strategy": "x", "seed": seed, "config_sha": "sha", "tasks": ["a", "b"],
            "questions": {"a": ["a0", "a1", "a2", "a3"], "b": ["b0", "b1"]},
            "scores": {"a": [[0.0] * 4, [1.0] * 4, final_a], "b": [[0.0] * 2, [0.0] * 2, [1.0, 0.0]]},
            "costs": {"selection_s": 1.0, "train_s": 2.0, "rounds": 2, "samples_trained": 10, "samples_scored": 20,
                      "selections_sha256": "0", "per_round": [{"round": 1, "pool": 5, "selected": 5,
                                                                "selection_s": 0.5, "train_s": 1.0}]}}


def _run(root: Path, name: str, rows: list[dict[str, list[float]]]) -> Path:
    """A run dir whose round t answered question q of task x with score rows[t][x][q]."""
    d = root / name
    h = RunHistory(run=name, strategy="x", tasks=["a", "b"])
    for t, per_task in enumerate(rows):
        path = d / "rounds" / "0" / "setup" if t == 0 else d / "rounds" / str(t) / "eval"
        path.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"task": x, "id": f"{x}/{q}", "score": s}) for x in per_task for q, s in enumerate(per_task[x])]
        (path / "predictions.jsonl").write_text("\n".join(lines) + "\n")
        h.set_accuracy_row(t, [float(np.mean(per_task[x])) for x in ("a", "b")])
        if t:
            h.set_round(RoundRecord(round=t, dataset="ab"[t - 1]))
    save_history(h, d)
    return d


def test_a_registered_metric_reaches_the_results_over_seeds(throwaway):
    m = metrics_of(score_tensor(_result(0, [1.0, 1.0, 1.0, 0.0])))
    assert m[throwaway] == pytest.approx(0.75)
    by = {"x": [_result(0, [1.0] * 4), _result(1, [0.0] * 4)]}
    assert point_estimates(by)["x"][throwaway] == pytest.approx(0.5)
    assert set(np.round(seed_question_bootstrap(by, n=50, seed=0)["x"][throwaway], 6)) <= {0.0, 0.5, 1.0}


def test_a_headline_metric_is_in_the_paired_bootstrap_by_default(throwaway, tmp_path):
    rows = [{"a": [0.0, 0.0], "b": [0.0]}, {"a": [1.0, 1.0], "b": [0.0]}, {"a": [1.0, 0.0], "b": [1.0]}]
    draws = paired_bootstrap({"one": _run(tmp_path, "one", rows)}, n=200, seed=0)["one"]
    assert list(draws) == [m.name for m in M.headline()] and list(draws)[-1] == throwaway
    assert set(np.round(draws[throwaway], 6)) == {0.0, 0.5, 1.0}  # task a's two questions redrawn


def test_a_headline_metric_is_on_the_model_card(throwaway):
    card = model_card(run="r", round_=2, base_model="b", card_base_model=None, family="hf", strategy="s",
                      datasets=["a", "b"], metrics={"avg_acc": 0.5, throwaway: 0.25}, tasks=["a", "b"],
                      accuracy=[[0.0, 0.0], [1.0, 0.0], [0.5, 0.5]], lineage_rounds=[], merged=False, loader="x")
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["metrics"][-1] == throwaway
    assert front["model-index"][0]["results"][0]["metrics"][-1] == {"type": throwaway, "name": "First task, final",
                                                                    "value": 0.25}
    assert "| First task, final | 0.2500 |" in card  # the metrics table


def test_a_headline_metric_is_a_column_of_the_comparison(throwaway, tmp_path, monkeypatch):
    from eval import compare_table
    from lifelong.evaluation.multiseed import save_result

    monkeypatch.setattr(compare_table, "BOOTSTRAP", 20)
    for r in (_result(0, [1.0] * 4), _result(1, [0.0] * 4)):
        save_result(r, tmp_path / "runs")
    md = compare_table.assemble(["x"], "cmd", tmp_path, {("x", 0): "sha", ("x", 1): "sha"})
    head, rule, row = [line for line in md.splitlines() if line.startswith("|")][:3]  # the main table
    assert "| FWT | first final | 95% CI | pooled acc |" in head and rule.count("---") == head.count("|") - 1
    assert row.split(" | ")[head.split(" | ").index("first final")] == "0.500"
    assert json.loads((tmp_path / "compare.json").read_text())["runs"]["x"][f"{throwaway}_ci95"] is not None
