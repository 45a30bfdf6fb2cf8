"""Datasets that arrive in a finished run (``lifelong round``): every output gets the new task."""
import json
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from arrival_data import write_hf, write_llava, write_messages
from lifelong.cli import main
from lifelong.data.pool import Pool
from lifelong.evaluation.bootstrap import accuracy_matrix, question_scores

pytestmark = pytest.mark.e2e  # a whole run of the loop: in the default suite (-m 'not e2e' leaves it out)

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def start_args(tmp_path: Path, name: str, *extra: str) -> list[str]:
    """``lifelong run`` of the smoke config on one user dataset (LLaVA JSON folder with train/test)."""
    warm = write_llava(tmp_path / "src" / "warm", "warm")
    return ["run", SMOKE, f"runs_dir={tmp_path / 'runs'}", f"name={name}", "stream.builtin=none",
            f"stream.datasets=[{{name: warm, train: '{warm}', test: '{warm}'}}]", "prune.cap=30",
            "eval.max_samples_per_task=6", *extra]


def _history(run: Path) -> dict:
    return json.loads((run / "metrics" / "history.json").read_text())


def _accuracy_from_predictions(path: Path, task: str) -> float:
    scores = [json.loads(line)["score"] for line in path.read_text().splitlines() if json.loads(line)["task"] == task]
    return float(np.mean(scores))


@pytest.fixture(scope="module")
def arrived(tmp_path_factory):
    """A finished one-round run that then receives a messages-JSONL folder and a save_to_disk dataset."""
    tmp = tmp_path_factory.mktemp("arrive")
    assert main(start_args(tmp, "arr", "tracker.log_with=[tensorboard]")) == 0
    run = tmp / "runs" / "arr"
    assert _history(run)["tasks"] == ["warm"]
    cool = write_messages(tmp / "src" / "cool", "cool")
    mono = write_hf(tmp / "src" / "mono_hf", "mono")
    assert main(["round", "--run", str(run), "--dataset", str(cool)]) == 0
    assert main(["round", "--run", str(run), "--dataset", str(mono), "--name", "mono"]) == 0
    return run


def test_arrivals_fill_the_matrix(arrived):
    h = _history(arrived)
    assert h["tasks"] == ["warm", "cool", "mono"]
    assert [r["dataset"] for r in h["rounds"]] == ["warm", "cool", "mono"]
    a = np.array(h["accuracy"], dtype=float)  # null -> nan
    assert a.shape == (4, 3)  # (rounds + 1) x tasks
    assert np.isfinite(a).all()  # earlier rows back-filled from the saved adapters
    with Pool(arrived / "pool") as pool:
        for task in ("warm", "cool", "mono"):
            assert pool.count(split="test", dataset=task) == 6
            assert pool.count(split="train", dataset=task, status=None) == 12  # the test file was not trained on
    # The bootstrap's per-question scores (own and back-filled predictions) give the same matrix.
    assert np.allclose(accuracy_matrix(question_scores(arrived, h["tasks"], 3), h["tasks"]), a)
    # A back-filled cell is what a separate re-evaluation of that round's saved adapter measures.
    for r in (0, 1):
        out = arrived / f"reeval_{r}.jsonl"
        assert main(["eval", "--run", str(arrived), "--round", str(r), "--out", str(out), "--no-progress"]) == 0
        for j, task in enumerate(["cool", "mono"]):
            if r <= j:  # rows before the task arrived were back-filled
                assert a[r, j + 1] == pytest.approx(_accuracy_from_predictions(out, task))


def test_arrivals_reach_metrics_dashboard_cards_and_tensorboard(arrived):
    h = _history(arrived)
    a = np.array(h["accuracy"], dtype=float)
    m = json.loads((arrived / "metrics" / "metrics.json").read_text())
    # FWT by hand: accuracy on task i just before its round minus the base model's.
    fwt = np.mean([a[1, 1] - a[0, 1], a[2, 2] - a[0, 2]])
    assert m["final"]["fwt"] == pytest.approx(fwt)
    csv = (arrived / "metrics" / "accuracy_matrix.csv").read_text().splitlines()
    assert csv[0] == "round,warm,cool,mono" and len(csv) == 5
    assert "mono" in (arrived / "dashboard.html").read_text()
    card = (arrived / "data_cards" / "round_3.md").read_text()
    assert "mono" in card
    acc = EventAccumulator(str(arrived / "metrics" / "tb" / "arr"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert any(t.endswith("acc/mono") for t in tags), tags
    # Per-round scalars come from Tracker.log_round (round_scalars' tags), one point per round report.
    avg_tag = next(t for t in tags if t.endswith("cl/avg_acc"))
    got = {e.step: e.value for e in acc.Scalars(avg_tag)}
    assert sorted(got) == [1, 2, 3]
    assert all(got[t] == pytest.approx(m["per_round"]["avg_acc"][t], abs=1e-6) for t in (1, 2, 3))
    assert any(t.endswith("seconds/train") for t in tags) and any(t.endswith("pool/size") for t in tags)
    # The loss curve continues across rounds (and processes) on one step axis: 1 .. all optimizer steps.
    rounds_steps = [json.loads((arrived / f"rounds/{t}/train/losses.json").read_text())[-1][0] for t in (1, 2, 3)]
    loss_tag = next(t for t in tags if t.endswith("train/loss"))
    assert sorted(e.step for e in acc.Scalars(loss_tag)) == list(range(1, sum(rounds_steps) + 1))


def test_export_of_the_last_round_names_every_dataset(arrived, tmp_path):
    out = tmp_path / "export"
    assert main(["export", str(arrived), "--out", str(out)]) == 0
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["round"] == 3
    assert lineage["datasets"] == ["warm", "cool", "mono"]
    assert (out / "adapter_model.safetensors").exists()
    assert "mono" in (out / "README.md").read_text()


def test_fwt_backfill_fills_only_the_cells_forward_transfer_needs(tmp_path):
    assert main(start_args(tmp_path, "fwt", "eval.backfill=fwt")) == 0
    run = tmp_path / "runs" / "fwt"
    for kind, parquet in (("cool", False), ("mono", True)):  # messages as JSONL, then as Parquet
        src = write_messages(tmp_path / "src" / kind, kind, parquet=parquet)
        assert main(["round", "--run", str(run), "--dataset", str(src)]) == 0
    a = np.array(_history(run)["accuracy"], dtype=float)
    assert np.isfinite(a[:, 0]).all() and np.isfinite(a[[0, 1, 2, 3], 1]).all()
    assert np.isnan(a[1, 2])  # mono arrived in round 3: only rows 0 and 2 were evaluated before
    assert np.isfinite(a[[0, 2, 3], 2]).all()


def _files(run: Path) -> list[Path]:
    """The run's files, less the lock and SQLite's transient WAL files."""
    return sorted(p.relative_to(run) for p in run.rglob("*")
                  if p.name != "run.lock" and not p.name.endswith(("-wal", "-shm")))


def test_round_refuses_a_dataset_it_cannot_train(arrived, tmp_path, capsys):
    run = arrived  # a refusal changes nothing, so the finished run of the other tests serves
    config = (run / "config.yaml").read_text()
    files = _files(run)
    bad = tmp_path / "src" / "broken"
    bad.mkdir(parents=True)
    (bad / "train.jsonl").write_text('{"messages": "not a list"}\n{"id": 1}\n')
    assert main(["round", "--run", str(run), "--dataset", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "no valid training record" in err and "line 1" in err
    # Another dataset with a name the run has.
    again = write_messages(tmp_path / "src" / "warm2", "cool")
    assert main(["round", "--run", str(run), "--dataset", str(again), "--name", "warm"]) == 2
    assert "already part of run" in capsys.readouterr().err
    assert (run / "config.yaml").read_text() == config
    assert _files(run) == files  # nothing written, not even a stage folder
    assert not (run / "rounds" / "4").exists()
    with Pool(run / "pool") as pool:
        assert pool.datasets() == ["warm", "cool", "mono"]
