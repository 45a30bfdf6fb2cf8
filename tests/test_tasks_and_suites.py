"""Columns are tasks: a dataset mixing two skills, a skill whose questions grow, a suite added to a finished run."""
import json
from pathlib import Path

import numpy as np
import pytest

from arrival_data import COLOURS, write_llava
from lifelong.cli import main
from lifelong.evaluation.bootstrap import accuracy_matrix, question_scores, run_predictions

pytestmark = pytest.mark.e2e  # whole runs of the loop

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def write_skills(root: Path, skills: dict[str, str], n_train: int = 6, n_test: int = 4, seed: int = 0) -> Path:
    """``root/train.jsonl`` + ``root/test.jsonl`` (messages) whose records carry ``"task"``: for each
    ``skill -> colour kind`` of ``skills``, ``n_train`` / ``n_test`` squares of that kind's colours."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        recs = []
        for skill, kind in skills.items():
            names = list(COLOURS[kind])
            for i in range(n):
                colour = names[i % len(names)]
                rgb = np.array(COLOURS[kind][colour])
                arr = np.clip(rgb + rng.integers(-15, 16, (24, 24, 3)), 0, 255).astype(np.uint8)
                rel = f"images/{split}_{skill}_{i}.png"
                Image.fromarray(arr).save(root / rel)
                recs.append({"id": f"{split}_{skill}_{i}", "task": skill, "images": [rel], "messages": [
                    {"role": "user", "content": "<image>\nWhich colour is this?"},
                    {"role": "assistant", "content": colour}]})
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return root


def _history(run: Path) -> dict:
    return json.loads((run / "metrics" / "history.json").read_text())


def _reeval(run: Path, r: int) -> dict[str, dict[str, dict]]:
    """``lifelong eval --round r``: task -> id -> prediction record."""
    out = run / f"reeval_{r}.jsonl"
    assert main(["eval", "--run", str(run), "--round", str(r), "--out", str(out), "--no-progress"]) == 0
    per: dict[str, dict[str, dict]] = {}
    for line in out.read_text().splitlines():
        p = json.loads(line)
        per.setdefault(p["task"], {})[p["id"]] = p
    return per


def _measured(run: Path, r: int) -> dict[str, dict[str, dict]]:
    """What the run measured for row r: task -> id -> prediction record (the latest measurement counts)."""
    per: dict[str, dict[str, dict]] = {}
    for path in run_predictions(run, r):
        found: dict[str, dict[str, dict]] = {}
        for line in path.read_text().splitlines():
            p = json.loads(line)
            found.setdefault(p["task"], {})[p["id"]] = p
        per.update(found)
    return per


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A finished one-round run (dataset warm); then a dataset mixing skill_a and skill_b arrives (round 2),
    then one that teaches skill_a again and brings more of its questions (round 3), then a suite is added."""
    tmp = tmp_path_factory.mktemp("mixed")
    warm = write_llava(tmp / "src" / "warm", "warm")
    assert main(["run", SMOKE, f"runs_dir={tmp / 'runs'}", "name=mix", "stream.builtin=none",
                 f"stream.datasets=[{{name: warm, train: '{warm}', test: '{warm}'}}]", "prune.cap=30",
                 "eval.max_samples_per_task=6"]) == 0
    run = tmp / "runs" / "mix"
    mix = write_skills(tmp / "src" / "mixmonth", {"skill_a": "cool", "skill_b": "mono"})
    assert main(["round", "--run", str(run), "--dataset", str(mix), "--metric", "token_f1"]) == 0
    first = _history(run)
    more = write_skills(tmp / "src" / "more", {"skill_a": "cool"}, seed=1)
    assert main(["round", "--run", str(run), "--dataset", str(more)]) == 0
    bench = write_llava(tmp / "src" / "bench", "mono", n_test=5, seed=7) / "test.json"
    before_suite = _history(run)
    assert main(["suite", "add", "--run", str(run), str(bench), "--name", "bench", "--no-progress"]) == 0
    return run, first, before_suite


def test_a_two_skill_dataset_adds_two_columns_filled_in_every_row(mixed):
    run, first, _ = mixed
    assert first["tasks"] == ["warm", "skill_a", "skill_b"]
    a = np.array(first["accuracy"], dtype=float)
    assert a.shape == (3, 3) and np.isfinite(a).all()  # rows before round 2 back-filled
    cols = {c["task"]: c for c in first["columns"]}
    assert cols["skill_a"]["source"] == cols["skill_b"]["source"] == "mixmonth"
    assert cols["skill_a"]["metric"] == "token_f1"  # the dataset's metric applies to the tasks it brings
    assert cols["warm"]["rounds"] == [1] and cols["skill_b"]["rounds"] == [2]


def test_a_skill_taught_again_is_one_column_measured_again_on_all_its_questions(mixed):
    run, first, before_suite = mixed
    h = before_suite
    assert h["tasks"] == ["warm", "skill_a", "skill_b"]  # round 3's dataset added no column
    a = np.array(h["accuracy"], dtype=float)
    assert a.shape == (4, 3) and np.isfinite(a).all()
    cols = {c["task"]: c for c in h["columns"]}
    assert cols["skill_a"]["rounds"] == [2, 3] and cols["skill_a"]["sources"] == ["mixmonth", "more"]
    # Every row of skill_a answered the same questions, some of them from round 3's dataset.
    ids = [sorted(_measured(run, r)["skill_a"]) for r in range(4)]
    assert all(x == ids[-1] for x in ids) and any(i.startswith("more/") for i in ids[-1])
    # The rows measured before round 3 were measured again by round 3's eval stage.
    backfill = json.loads((run / "rounds/3/eval/done").read_text())["backfill"]
    assert sorted(backfill) == ["0", "1", "2"] and all("skill_a" in backfill[r] for r in backfill)
    assert all("skill_b" not in backfill[r] for r in backfill)


def test_a_suite_added_to_a_finished_run_is_filled_in_every_row(mixed):
    run, _, _ = mixed
    h = _history(run)
    assert h["tasks"] == ["warm", "skill_a", "skill_b", "bench"]
    a = np.array(h["accuracy"], dtype=float)
    assert a.shape == (4, 4) and np.isfinite(a).all()  # base row included
    bench = h["columns"][3]
    assert (bench["kind"], bench["source"], bench["rounds"]) == ("suite", "bench", [])
    assert "bench" in (run / "config.yaml").read_text()
    # The bootstrap reads the same matrix from the per-question predictions.
    assert np.allclose(accuracy_matrix(question_scores(run, h["tasks"], 3), h["tasks"]), a)
    m = json.loads((run / "metrics/metrics.json").read_text())
    fwt = np.mean([a[1, 1] - a[0, 1], a[1, 2] - a[0, 2]])  # skill_a, skill_b: taught in round 2
    assert m["final"]["fwt"] == pytest.approx(fwt)
    bwt = np.mean([a[3, 0] - a[1, 0], a[3, 1] - a[2, 1], a[3, 2] - a[2, 2]])
    assert m["final"]["bwt"] == pytest.approx(bwt)
    assert (run / "metrics/accuracy_matrix.csv").read_text().splitlines()[0] == "round,warm,skill_a,skill_b,bench"
    html = (run / "dashboard.html").read_text()
    assert 'data-source="mixmonth"' in html and 'data-kind="suite"' in html and "taught in rounds 2, 3" in html


def test_back_filled_cells_are_what_lifelong_eval_measures(mixed):
    run, _, _ = mixed
    h = _history(run)
    a = np.array(h["accuracy"], dtype=float)
    for r in range(4):
        again, measured = _reeval(run, r), _measured(run, r)
        for j, task in enumerate(h["tasks"]):
            assert sorted(again[task]) == sorted(measured[task]), (r, task)
            assert [again[task][i]["prediction"] for i in sorted(again[task])] == \
                   [measured[task][i]["prediction"] for i in sorted(measured[task])], (r, task)
            assert a[r, j] == pytest.approx(np.mean([p["score"] for p in again[task].values()])), (r, task)


def test_a_suite_without_a_valid_question_is_refused_and_changes_nothing(mixed, tmp_path, capsys):
    run, _, _ = mixed
    config = (run / "config.yaml").read_text()
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"messages": "not a list"}\n')
    with pytest.raises(SystemExit, match="gave no valid question"):
        main(["suite", "add", "--run", str(run), str(bad), "--no-progress"])
    with pytest.raises(SystemExit, match="is a dataset of the run"):
        main(["suite", "add", "--run", str(run), str(bad), "--name", "warm", "--no-progress"])
    assert (run / "config.yaml").read_text() == config


def test_a_configured_suite_is_evaluated_from_the_base_row_on(tmp_path):
    warm = write_llava(tmp_path / "src" / "warm", "warm")
    bench = write_llava(tmp_path / "src" / "bench", "cool", n_test=4, seed=3)  # a folder: its test.json
    assert main(["run", SMOKE, f"runs_dir={tmp_path / 'runs'}", "name=cfg", "stream.builtin=none",
                 f"stream.datasets=[{{name: warm, train: '{warm}', test: '{warm}'}}]", "prune.cap=30",
                 "eval.max_samples_per_task=4", f"eval.suites=[{{name: bench, path: '{bench}', metric: token_f1}}]"]) == 0
    h = _history(tmp_path / "runs" / "cfg")
    assert h["tasks"] == ["warm", "bench"]
    assert np.isfinite(np.array(h["accuracy"], dtype=float)).all()
    bench_col = h["columns"][1]
    assert (bench_col["kind"], bench_col["metric"], bench_col["rounds"]) == ("suite", "token_f1", [])
    m = json.loads((tmp_path / "runs" / "cfg" / "metrics/metrics.json").read_text())
    a = np.array(h["accuracy"], dtype=float)
    assert m["final"]["avg_acc"] == pytest.approx(a[1].mean())  # the suite counts as seen
    assert m["final"]["learning_acc"] == pytest.approx(a[1, 0])  # but has no diagonal cell
