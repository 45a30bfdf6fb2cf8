"""RunLayout: every path of a run directory in one place, and the criteria that were written twice."""
import json
import os

import pytest

from lifelong.evaluation.bootstrap import question_scores, run_predictions
from lifelong.layout import ADAPTER_FILES, RunLayout, write_atomic, write_json
from lifelong.run_config import RunConfig, dump_run_config, load_run_config, save_run_config


def test_paths_follow_the_documented_layout(tmp_path):
    L = RunLayout(tmp_path / "r")
    rel = lambda p: p.relative_to(tmp_path / "r").as_posix()  # noqa: E731
    assert rel(L.config) == "config.yaml" and rel(L.lock) == "run.lock" and rel(L.pool) == "pool"
    assert rel(L.stream_manifest) == "data/stream.json" and rel(L.arrivals) == "arrivals"
    assert rel(L.marker(3, "score")) == "rounds/3/score/done"
    assert rel(L.selection(2)) == "rounds/2/select/selection.json"
    assert rel(L.losses(2)) == "rounds/2/train/losses.json"
    assert rel(L.pruned(2)) == "rounds/2/prune/pruned.json"
    assert rel(L.score_columns(4)) == "rounds/4/score/columns"
    assert rel(L.adapter_dir(5)) == "adapters/round_5"
    assert rel(L.history) == "metrics/history.json" and rel(L.tensorboard) == "metrics/tb"
    assert rel(L.data_card(1)) == "data_cards/round_1.md" and rel(L.dashboard) == "dashboard.html"


def test_predictions_of_round_0_are_setups_and_later_rounds_their_evals(tmp_path):
    L = RunLayout(tmp_path)
    assert L.predictions(0) == tmp_path / "rounds/0/setup/predictions.jsonl"
    assert L.predictions(2) == tmp_path / "rounds/2/eval/predictions.jsonl"
    for later in (3, 2):  # back-filled cells of round 1's row, listed after its own file, in round order
        p = L.backfill_predictions(later, 1)
        p.parent.mkdir(parents=True)
        p.write_text("")
    want = [tmp_path / "rounds/1/eval/predictions.jsonl", tmp_path / "rounds/2/eval/backfill/round_1.jsonl",
            tmp_path / "rounds/3/eval/backfill/round_1.jsonl"]
    assert L.all_predictions(1) == want == run_predictions(tmp_path, 1)
    assert run_predictions(tmp_path, 0) == [L.predictions(0)]
    # re-evaluations go elsewhere, for every round including 0
    for t in (0, 1):
        assert L.reeval_predictions(t) not in L.all_predictions(t)
        assert L.rounds not in L.reeval_predictions(t).parents


def test_the_bootstrap_reads_round_0_from_setup(tmp_path):
    L = RunLayout(tmp_path)
    rows = {0: [0.0, 1.0], 1: [1.0, 1.0]}  # (round -> two questions' scores of task a)
    for t, scores in rows.items():
        L.predictions(t).parent.mkdir(parents=True)
        L.predictions(t).write_text("".join(json.dumps({"task": "a", "id": f"q{i}", "score": s}) + "\n"
                                            for i, s in enumerate(scores)))
    ids, m = question_scores(tmp_path, ["a"], 1)["a"]
    assert ids == ["q0", "q1"] and m.tolist() == [[0.0, 1.0], [1.0, 1.0]]


def _save(L: RunLayout, t: int, files=ADAPTER_FILES) -> None:
    d = L.adapter_dir(t)
    d.mkdir(parents=True)
    for f in files:
        (d / f).write_text("{}")


def test_one_criterion_for_a_usable_adapter(tmp_path):
    L = RunLayout(tmp_path)
    assert L.adapter_rounds() == []  # no adapters/ folder at all
    _save(L, 0)
    _save(L, 2)
    _save(L, 10)
    _save(L, 3, files=ADAPTER_FILES[:1])  # config without weights: not usable
    (L.adapters / "round_4.tmp").mkdir()  # a save cut short
    (L.adapters / "round_x").mkdir()
    assert L.adapter_rounds() == [0, 2, 10]  # numeric order, round 0 included
    assert [L.has_adapter(t) for t in range(5)] == [True, False, True, False, False]
    assert L.missing_adapter_files(3) == ["adapter_model.safetensors"]
    assert L.missing_adapter_files(1) == list(ADAPTER_FILES)


def test_export_and_eval_agree_on_which_rounds_have_adapters(tmp_path):
    from lifelong.export.adapter import ExportError, export

    run = tmp_path / "run"
    L = RunLayout(run)
    run.mkdir()
    L.config.write_text(dump_run_config(RunConfig(name="run", runs_dir=tmp_path)))
    _save(L, 1, files=ADAPTER_FILES[:1])
    with pytest.raises(ExportError, match="lacks adapter_model.safetensors"):
        export(run, tmp_path / "out", round=1)
    with pytest.raises(ExportError, match="has no saved adapter"):
        export(run, tmp_path / "out")


def test_atomic_writes_leave_no_temporary_file(tmp_path):
    write_atomic(tmp_path / "a.txt", "one")
    write_atomic(tmp_path / "a.txt", "two")
    write_json(tmp_path / "b.json", {"x": [1, 2]})
    assert (tmp_path / "a.txt").read_text() == "two" and json.loads((tmp_path / "b.json").read_text()) == {"x": [1, 2]}
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.json"]


def test_save_run_config_is_atomic_and_loads_back(tmp_path):
    cfg = RunConfig(name="c", runs_dir=tmp_path)
    cfg.run_dir.mkdir()
    path = save_run_config(cfg)
    assert path == RunLayout(cfg.run_dir).config and path.read_text() == dump_run_config(cfg)
    assert sorted(os.listdir(cfg.run_dir)) == ["config.yaml"]
    assert dump_run_config(load_run_config(cfg.run_dir)) == dump_run_config(cfg)
