"""A newcomer's mistakes are refused up front, in one line, with nothing written (issue 40).

These tests need no model: every refusal here happens before a run starts.
"""
import errno
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from arrival_data import write_hf, write_llava
from lifelong.arrivals import resolve
from lifelong.cli import EXIT_DISK_FULL, EXIT_USER, disk_full, main
from lifelong.data.ingest import ingest
from lifelong.data.pool import Pool, PruneRecord
from lifelong.run_config import load_run_config
from lifelong.run_checks import with_default_test

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _run_args(tmp_path: Path, *extra: str) -> list[str]:
    warm = write_llava(tmp_path / "src" / "warm", "warm")
    return ["run", SMOKE, f"runs_dir={tmp_path / 'runs'}", "name=n", "stream.builtin=none",
            f"stream.datasets=[{{name: warm, train: '{warm}', test: '{warm}'}}]", *extra]


def _pool_with_prunes(root: Path, tmp_path: Path) -> Pool:
    """A pool of 12 training samples; round 1 prunes 3, the purge drops their rows, round 2 prunes 2 more."""
    pool = Pool(root)
    ingest(pool, write_llava(tmp_path / "src" / "p", "warm", n_train=12, n_test=2) / "train.json")
    ids = pool.ids()
    pool.prune([PruneRecord(i, 1, "semdedup", 0, 0.99, duplicate_of=ids[0]) for i in ids[1:4]])
    assert pool.purge(before_round=2) == 3  # round 1's card written: their rows leave `samples`
    pool.prune([PruneRecord(i, 2, "semdedup", 1, 0.98, duplicate_of=ids[4]) for i in ids[5:7]])
    return pool


# ---- 2. pool stats counts every round's pruning ---------------------------------------------------
def test_pool_stats_counts_the_pruning_of_every_round(tmp_path, capsys):
    _pool_with_prunes(tmp_path / "pool", tmp_path).close()
    assert main(["pool", "stats", "--pool", str(tmp_path / "pool"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    counts = {(r["split"], r["status"]): r["count"] for r in rows if r["dataset"] == "p"}
    assert counts == {("train", "active"): 7, ("train", "pruned"): 5}  # 12 = 7 + 3 (round 1) + 2 (round 2)
    assert main(["pool", "ledger", "--pool", str(tmp_path / "pool")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5


# ---- 13. the ledger names the sample each pruned one duplicates --------------------------------------
def test_pool_ledger_shows_duplicate_of(tmp_path, capsys):
    with _pool_with_prunes(tmp_path / "pool", tmp_path) as pool:
        ids = pool.ids(status=None)
    assert main(["pool", "ledger", "--pool", str(tmp_path / "pool")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"duplicate_of={ids[0]}" in lines[0] and "duplicate_of=p/train/" in lines[-1]
    assert main(["pool", "ledger", "--pool", str(tmp_path / "pool"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["duplicate_of"] for r in rows] == [ids[0]] * 3 + [rows[-1]["duplicate_of"]] * 2
    assert rows[-1]["duplicate_of"] != ids[0]


# ---- 13. a split-named file is named after its folder, as ingest does ---------------------------------
def test_round_names_a_split_named_file_after_its_folder(tmp_path):
    d = write_llava(tmp_path / "colours", "warm")
    assert resolve(d / "train.json").name == "colours"
    with Pool(tmp_path / "pool") as pool:
        assert ingest(pool, d / "train.json").dataset == "colours"
    other = tmp_path / "x" / "my_data.json"
    other.parent.mkdir()
    other.write_text((d / "train.json").read_text())
    assert resolve(other).name == "my_data"


# ---- 3. a save_to_disk folder given as train: gets its test split evaluated -----------------------------
def test_train_folder_without_test_gets_its_held_out_split(tmp_path):
    hf = write_hf(tmp_path / "mono_hf", "mono")
    llava = write_llava(tmp_path / "warm", "warm")
    cfg = load_run_config(SMOKE, [f"runs_dir={tmp_path / 'runs'}",
                                  f"stream.datasets=[{{name: mono, train: '{hf}'}}, {{name: warm, train: '{llava}'}}]"])
    assert [with_default_test(e).test for e in cfg.stream.datasets] == [str(hf), str(llava)]
    # A folder with no held-out split keeps none.
    (llava / "test.json").unlink()
    assert with_default_test(cfg.stream.datasets[1]).test == ""


# ---- 7, 8. names and paths that would write in the wrong place ---------------------------------------------
def test_empty_run_name_is_refused_before_anything_is_written(tmp_path, capsys):
    args = _run_args(tmp_path, "name=")
    assert main(args) == EXIT_USER
    err = capsys.readouterr().err
    assert err.startswith("error: name: ''") and "Traceback" not in err
    assert _tree(tmp_path / "runs") == []


def test_pool_stats_of_a_mistyped_run_creates_nothing(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    assert main(["pool", "stats", "--run", str(tmp_path / "runs" / "typo")]) == EXIT_USER
    assert "not a run directory" in capsys.readouterr().err
    assert main(["pool", "check", "--pool", str(tmp_path / "nopool")]) == EXIT_USER
    assert "no pool at" in capsys.readouterr().err
    assert _tree(tmp_path) == ["runs"]


# ---- 9. the built-in stream only when the config names no datasets ---------------------------------------------
def test_a_config_with_its_own_datasets_does_not_run_the_builtin_stream(tmp_path):
    warm = write_llava(tmp_path / "warm", "warm")
    own = tmp_path / "mine.yaml"
    own.write_text(f"name: mine\nstream:\n  datasets:\n    - {{name: warm, train: '{warm}'}}\n")
    assert load_run_config(own).stream.builtin == "none"
    assert load_run_config(SMOKE, ["stream.builtin=auto"]).stream.builtin == "small"  # no datasets named
    none = tmp_path / "none.yaml"
    none.write_text("name: demo\n")
    assert load_run_config(none).stream.builtin == "small"


# ---- 10. values and every dataset's paths checked at the start ----------------------------------------------------
@pytest.mark.parametrize("override, says", [
    ("train.batch_size=-4", "train.batch_size: -4 must be greater than 0"),
    ("select.budget.fraction=1.5", "select.budget.fraction: 1.5 must be in (0, 1]"),
    ("eval.task_metrics={warm: exact_mach}", "unknown answer metric 'exact_mach'"),
])
def test_bad_values_are_refused_before_the_run_starts(tmp_path, capsys, override, says):
    assert main(_run_args(tmp_path, override)) == EXIT_USER
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert _tree(tmp_path / "runs") == []


def test_a_later_datasets_wrong_path_is_refused_before_round_one(tmp_path, capsys):
    warm = write_llava(tmp_path / "src" / "warm", "warm")
    datasets = (f"stream.datasets=[{{name: warm, train: '{warm}'}}, "
                f"{{name: cool, train: '{tmp_path}/src/cool/train.jsn'}}, {{name: bad, train: '{warm}', metric: f1x}}]")
    assert main(["run", SMOKE, f"runs_dir={tmp_path / 'runs'}", "name=n", datasets]) == EXIT_USER
    err = capsys.readouterr().err
    assert "2 problems" in err
    assert "stream.datasets[1] (cool).train:" in err and "train.jsn does not exist" in err
    assert "stream.datasets[2] (bad).metric: unknown answer metric 'f1x'" in err
    assert _tree(tmp_path / "runs") == []


# ---- 12. messages a user can act on ------------------------------------------------------------------------------
def test_type_errors_say_what_was_expected(tmp_path, capsys):
    assert main(_run_args(tmp_path, "select.budget.count=2.5")) == EXIT_USER
    err = capsys.readouterr().err
    assert "select.budget.count: expected an integer or null, got 2.5" in err and "Optional" not in err


def test_ingest_names_the_line_a_bad_record_is_on(tmp_path, capsys):
    good = json.loads((write_llava(tmp_path / "d", "warm", n_train=1) / "train.json").read_text())[0]
    data = tmp_path / "d" / "train.jsonl"
    data.write_text(json.dumps(good) + "\n\n" + '{"id": "x", "conversations": "not a list"}\n')
    (tmp_path / "d" / "train.json").unlink()
    assert main(["ingest", str(data), "--pool", str(tmp_path / "pool")]) == 0
    out = capsys.readouterr().out
    assert "1 added" in out and "  line 3 (id x):" in out  # the second record, on line 3 of the file


def test_closing_the_pipe_ends_quietly(tmp_path):
    with Pool(tmp_path / "pool") as pool:
        ingest(pool, write_llava(tmp_path / "src" / "p", "warm", n_train=600, n_test=1) / "train.json")
        pool.prune([PruneRecord(i, 1, "semdedup_duplicate_of_a_much_longer_reason", 0, 0.99) for i in pool.ids()])
    r = subprocess.run(f"{sys.executable} -m lifelong.cli pool ledger --pool {tmp_path / 'pool'} | head -1",
                       shell=True, capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.count("\n") == 1 and r.stderr == ""


def test_a_full_disk_is_recognised_however_it_is_reported(tmp_path):
    """The three forms a full disk took in a run: SQLite's error, Python's OSError, a native writer's text."""
    db = sqlite3.connect(tmp_path / "small.sqlite")
    db.execute("CREATE TABLE t (x BLOB)")
    db.execute("PRAGMA max_page_count=4")  # a database that can grow no further: SQLite's own "full"
    with pytest.raises(sqlite3.OperationalError) as full:
        for _ in range(10):
            db.execute("INSERT INTO t VALUES (randomblob(4000))")
    assert disk_full(full.value)
    assert disk_full(OSError(errno.ENOSPC, "No space left on device"))
    wrapped = RuntimeError("saving failed")
    wrapped.__cause__ = Exception("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                                  "message: \"No space left on device\" }) os error 28")
    assert disk_full(wrapped)
    assert not disk_full(OSError(errno.ENOENT, "No such file"))
    assert EXIT_DISK_FULL not in (0, 1, EXIT_USER, 3, 130)


def test_watch_with_a_config_to_fix_makes_no_run_directory(tmp_path, capsys):
    args = ["watch", "--run", str(tmp_path / "runs" / "w"), "--config", SMOKE, "train.batch_size=-4", "--once"]
    assert main(args) == EXIT_USER
    assert "train.batch_size: -4 must be greater than 0" in capsys.readouterr().err
    assert _tree(tmp_path / "runs") == []


def test_a_dataset_named_like_a_builtin_one_is_refused_up_front(tmp_path, capsys):
    warm = write_llava(tmp_path / "src" / "warm", "warm")
    args = ["run", SMOKE, f"runs_dir={tmp_path / 'runs'}", "name=n", "stream.builtin=small",
            f"stream.datasets=[{{name: digits, train: '{warm}'}}]"]
    assert main(args) == EXIT_USER
    assert "'digits' appears twice in the stream" in capsys.readouterr().err
    assert _tree(tmp_path / "runs") == []


def test_a_run_whose_pending_dataset_went_missing_names_the_way_out(tmp_path, capsys):
    """A dataset that round/watch added, whose folder then went away before its round: the run is
    refused with the command that takes the dataset back (not an edit of config.yaml)."""
    from lifelong.run_config import save_run_config

    warm = write_llava(tmp_path / "src" / "gone", "warm")
    cfg = load_run_config(SMOKE, [f"runs_dir={tmp_path / 'runs'}", "name=r", "stream.builtin=none",
                                  f"stream.datasets=[{{name: gone, train: '{warm}'}}]"])
    cfg.run_dir.mkdir(parents=True)
    save_run_config(cfg)
    (warm / "train.json").unlink()
    before = _tree(tmp_path / "runs")
    assert main(["run", str(cfg.run_dir)]) == EXIT_USER
    err = capsys.readouterr().err
    assert "stream.datasets[0] (gone).train" in err and f"lifelong round --run {cfg.run_dir} --drop gone" in err
    assert _tree(tmp_path / "runs") == before
