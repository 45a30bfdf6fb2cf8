"""A newcomer's run never gets stuck: refusals leave it as it was, and every failure names the way on (issue 40)."""
import errno
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from arrival_data import write_hf, write_llava, write_messages
from lifelong import layout as layout_module
from lifelong.cli import EXIT_DISK_FULL, EXIT_INTERRUPTED, EXIT_USER, main
from lifelong.data.pool import Pool

pytestmark = pytest.mark.e2e  # whole runs of the loop: in the default suite (-m 'not e2e' leaves them out)

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def _start(tmp: Path, name: str) -> list[str]:
    """``lifelong run`` of a LLaVA folder (train and test named) and a save_to_disk folder given as ``train:`` only."""
    warm = write_llava(tmp / "src" / "warm", "warm")
    mono = write_hf(tmp / "src" / "mono_hf", "mono")
    return ["run", SMOKE, f"runs_dir={tmp / 'runs'}", f"name={name}", "stream.builtin=none", "prune.cap=30",
            "eval.max_samples_per_task=6",
            f"stream.datasets=[{{name: warm, train: '{warm}', test: '{warm}'}}, {{name: mono, train: '{mono}'}}]"]


def _files(run: Path) -> dict[str, bytes]:
    """Every file of a run with its bytes (the lock and SQLite's side files aside)."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != "run.lock" and not p.name.endswith(("-wal", "-shm"))}


def _history(run: Path) -> dict:
    return json.loads((run / "metrics" / "history.json").read_text())


def _copy(run: Path, dest_root: Path) -> Path:
    """A copy of a finished run under ``dest_root`` (its config's runs_dir pointed there)."""
    import shutil

    dest = dest_root / run.name
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("run.lock"))
    cfg = yaml.safe_load((dest / "config.yaml").read_text())
    cfg["runs_dir"] = str(dest_root)
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dest


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("newcomer")
    args = _start(tmp, "base")
    assert main(args) == 0
    return tmp / "runs" / "base", args


# ---- 3. a save_to_disk folder given as train: has its test split evaluated ------------------------------
def test_save_to_disk_train_folder_gets_its_test_column(base):
    run, _ = base
    h = _history(run)
    assert h["tasks"] == ["warm", "mono"]
    assert np.isfinite(np.array(h["accuracy"], dtype=float)).all()
    with Pool(run / "pool") as pool:
        assert pool.count(split="test", dataset="mono") == 6


# ---- 4. a typo in round --test leaves the run as it was ---------------------------------------------------
def test_round_with_a_mistyped_test_path_changes_nothing(base, tmp_path, capsys):
    run = _copy(base[0], tmp_path / "runs")
    before = _files(run)
    cool = write_messages(tmp_path / "src" / "cool", "cool")
    code = main(["round", "--run", str(run), "--dataset", str(cool / "train.jsonl"), "--test", str(cool / "tst.jsonl")])
    assert code == EXIT_USER
    err = capsys.readouterr().err
    assert "error: " in err and "tst.jsonl does not exist" in err and "Traceback" not in err
    assert _files(run) == before
    # The corrected command is the next round, named after the folder (as ingest names it).
    assert main(["round", "--run", str(run), "--dataset", str(cool / "train.jsonl"), "--test",
                 str(cool / "test.jsonl")]) == 0
    assert _history(run)["tasks"] == ["warm", "mono", "cool"]


# ---- 5. an unknown metric is refused before the dataset is added --------------------------------------------
def test_unknown_metric_is_refused_by_round_and_quarantined_by_watch(base, tmp_path, capsys):
    run = _copy(base[0], tmp_path / "runs")
    before = _files(run)
    cool = write_messages(tmp_path / "src" / "cool", "cool")
    assert main(["round", "--run", str(run), "--dataset", str(cool), "--metric", "token-f1"]) == EXIT_USER
    assert "unknown answer metric 'token-f1'" in capsys.readouterr().err
    assert _files(run) == before
    inbox = tmp_path / "inbox"
    folder = write_messages(inbox / "typo", "cool")
    (folder / "dataset.yaml").write_text("name: typo\ntrain: train.jsonl\ntest: test.jsonl\nmetric: exact_mach\n")
    (folder / "READY").touch()
    assert main(["watch", "--run", str(run), "--inbox", str(inbox), "--once", "--poll", "0.1"]) == 0
    assert "unknown answer metric 'exact_mach'" in (inbox / "quarantine" / "typo" / "REASON.txt").read_text()
    assert yaml.safe_load((run / "config.yaml").read_text())["stream"]["datasets"] == \
        yaml.safe_load(before["config.yaml"])["stream"]["datasets"]
    assert main(["run", str(run)]) == 0


# ---- 6. --force never rewrites the stream under finished rounds; arrivals stay ---------------------------------
def test_force_cannot_change_the_stream_of_rounds_that_ran(base, tmp_path, capsys):
    run = _copy(base[0], tmp_path / "runs")
    args = [a.replace(str(base[0].parent), str(run.parent)) for a in base[1]]
    before = _files(run)
    cool = write_messages(tmp_path / "src" / "cool", "cool")
    changed = [a for a in args if not a.startswith("stream.datasets=")] + [
        f"stream.datasets=[{{name: cool, train: '{cool}'}}]"]
    assert main([*changed, "--force"]) == EXIT_USER
    err = capsys.readouterr().err
    assert "even with --force" in err and "stream.datasets[0] (warm)" in err
    assert _files(run) == before
    # A change that --force may make is refused without it, naming the entry and the way back.
    other = [a for a in args if not a.startswith("stream.datasets=")] + [
        a.replace("}]", ", metric: token_f1}]") if a.startswith("stream.datasets=") else a for a in args
        if a.startswith("stream.datasets=")]
    assert main(other) == EXIT_USER
    err = capsys.readouterr().err
    assert "stream.datasets[1].metric" in err and f"lifelong run {run}" in err
    # An arrival extends the run; the original command then resumes it with the arrival kept.
    assert main(["round", "--run", str(run), "--dataset", str(cool)]) == 0
    config = (run / "config.yaml").read_text()
    assert main(args) == 0
    assert (run / "config.yaml").read_text() == config
    assert [d["name"] for d in yaml.safe_load(config)["stream"]["datasets"]] == ["warm", "mono", "cool"]
    assert _history(run)["tasks"] == ["warm", "mono", "cool"]


# ---- 12, 4. Ctrl-C in a round: a message, and a way to finish or drop it ----------------------------------------
def test_interrupted_round_says_how_to_finish_or_drop_it(base, tmp_path, capsys):
    run = _copy(base[0], tmp_path / "runs")
    before = _files(run)
    cool = write_messages(tmp_path / "src" / "cool", "cool")
    # The child's select stage waits for the signal, so Ctrl-C lands mid-round however loaded the machine is.
    # It also takes SIGINT back from an inherited "ignore": a shell starts background jobs (`make test &`)
    # with SIGINT ignored, and the child would finish the round and exit 0, while a user's Ctrl-C reaches a
    # process in the foreground.
    child = ("import signal, sys, time\n"
             "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
             "from lifelong import stages\n"
             "from lifelong.cli import main\n"
             "real = stages.ROUND['select']\n"
             "def held(*args):\n"
             "    print('select held', flush=True)\n"
             "    time.sleep(300)\n"
             "    return real(*args)\n"
             "stages.ROUND['select'] = held\n"
             "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, "-u", "-c", child, "round", "--run", str(run), "--dataset", str(cool)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    for line in proc.stdout:  # interrupt once the round is under way
        if line.strip() == "select held":
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "error: interrupted" in err and f"lifelong run {run}" in err and "Traceback" not in err
    # Adding it again is refused, naming both ways out.
    assert main(["round", "--run", str(run), "--dataset", str(cool)]) == EXIT_USER
    err = capsys.readouterr().err
    assert f"'lifelong run {run}' finishes it" in err and f"lifelong round --run {run} --drop cool" in err
    # Dropping it gives back the run as it was before the round.
    assert main(["round", "--run", str(run), "--drop", "cool"]) == 0
    after = _files(run)
    assert after["config.yaml"] == before["config.yaml"]
    assert not (run / "rounds" / "3").exists()
    with Pool(run / "pool") as pool:
        assert pool.datasets() == ["warm", "mono"] and pool.check() == []
    # A trained dataset cannot be dropped; the run goes on as before.
    assert main(["round", "--run", str(run), "--drop", "warm"]) == EXIT_USER
    assert "trained in round 1" in capsys.readouterr().err
    assert main(["round", "--run", str(run), "--dataset", str(cool)]) == 0
    assert _history(run)["tasks"] == ["warm", "mono", "cool"]


# ---- 11. a full disk: a message that says the data is safe and how to go on -----------------------------------------
def test_full_disk_mid_round_is_a_message_and_the_run_resumes(base, tmp_path, monkeypatch, capsys):
    run = _copy(base[0], tmp_path / "runs")
    cool = write_messages(tmp_path / "src" / "cool", "cool")
    real = layout_module.write_atomic

    def full(path, text):  # the training stage's record of its losses hits a full disk
        if Path(path).name == "losses.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, text)

    monkeypatch.setattr(layout_module, "write_atomic", full)
    assert main(["round", "--run", str(run), "--dataset", str(cool)]) == EXIT_DISK_FULL
    err = capsys.readouterr().err
    assert "error: the disk is full" in err and "nothing is lost" in err
    assert f"'lifelong run {run}' resumes" in err and "Traceback" not in err
    monkeypatch.setattr(layout_module, "write_atomic", real)
    assert main(["pool", "check", "--run", str(run)]) == 0
    assert main(["run", str(run)]) == 0
    assert _history(run)["tasks"] == ["warm", "mono", "cool"]


# ---- 13. exported weights are readable like every other exported file ----------------------------------------------
def test_merged_export_files_have_the_usual_mode(base, tmp_path):
    out = tmp_path / "merged"
    assert main(["export", str(base[0]), "--out", str(out), "--merge"]) == 0
    mask = os.umask(0)
    os.umask(mask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir() if p.is_file()}
    assert modes and set(modes.values()) == {0o666 & ~mask}, modes


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs mounted at ``tmp_path / 'disk'`` (needs root and CAP_SYS_ADMIN, else the test is skipped);
    yields a function that sets its size in KiB."""
    disk = tmp_path / "disk"
    disk.mkdir()

    def size(kib: int) -> None:
        opts = f"remount,size={kib}k" if os.path.ismount(disk) else f"size={kib}k"
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(disk)], capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip()}")

    yield disk, size
    if os.path.ismount(disk):
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.parametrize("spare_kib", [48, 160])
def test_a_really_full_disk_ends_with_the_message_and_the_run_resumes(base, tmp_path, small_disk, spare_kib):
    """The run on a file system with ``spare_kib`` free: the next round fills it (where depends on the margin)."""
    disk, size = small_disk
    size(64 * 1024)
    run = _copy(base[0], disk)
    st = os.statvfs(disk)
    size((st.f_blocks - st.f_bfree) * st.f_frsize // 1024 + spare_kib)  # what the run uses, plus the margin
    cool = write_messages(tmp_path / "src" / "cool", "cool")
    cli = [sys.executable, "-m", "lifelong.cli"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([*cli, "round", "--run", str(run), "--dataset", str(cool)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == EXIT_DISK_FULL, r.stderr[-2000:]
    assert "error: the disk is full" in r.stderr and "Traceback" not in r.stderr
    size(64 * 1024)  # space freed
    assert subprocess.run([*cli, "pool", "check", "--run", str(run)], cwd=ROOT, env=env).returncode == 0
    r = subprocess.run([*cli, "run", str(run)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _history(run)["tasks"] == ["warm", "mono", "cool"]
