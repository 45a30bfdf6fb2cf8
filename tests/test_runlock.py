"""One writer per run directory: a second writer is refused at once (exit 3), readers still work."""
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from arrival_data import write_llava
from lifelong.cli import main
from lifelong.evaluation.history import RunHistory, save_history
from lifelong.run_config import RunConfig, dump_run_config
from lifelong.runlock import EXIT_LOCKED, RunLocked, run_lock, running

ROOT = Path(__file__).resolve().parents[1]
HOLD = ("import sys, time\nfrom lifelong.runlock import run_lock\n"
        "with run_lock(sys.argv[1], command='holder under test'):\n    print('held', flush=True)\n    time.sleep(600)\n")


def _tree(d: Path) -> dict:
    """Every file under ``d`` with its size and mtime: what 'nothing written' compares."""
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(d.rglob("*"))}


@pytest.fixture
def held_run(tmp_path):
    """A run directory (config, pool with one dataset, history) whose lock another process holds."""
    run = tmp_path / "runs" / "held"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(dump_run_config(RunConfig(name="held", runs_dir=tmp_path / "runs")))
    assert main(["ingest", str(write_llava(tmp_path / "src" / "warm")), "--run", str(run)]) == 0
    h = RunHistory(run="held", strategy="adapt_inf", tasks=["warm"])
    h.set_accuracy_row(0, [0.5])
    save_history(h, run)
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "held"
    yield run, proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("argv", [
    ["run", "{config}"],
    ["run", "{run}"],
    ["round", "--run", "{run}", "--dataset", "{data}"],
    ["watch", "--run", "{run}", "--once"],
    ["eval", "--run", "{run}"],
    ["export", "{run}", "--out", "{out}", "--merge"],
], ids=["run-config", "run-dir", "round", "watch", "eval", "export-merge"])
def test_second_writer_is_refused_and_writes_nothing(held_run, tmp_path, capsys, argv):
    run, proc = held_run
    config = tmp_path / "held.yaml"
    config.write_text(f"name: held\nruns_dir: {run.parent}\n")
    before = _tree(run)
    fill = {"config": str(config), "run": str(run), "data": str(tmp_path / "src" / "warm"), "out": str(tmp_path / "o")}
    assert main([a.format(**fill) for a in argv]) == EXIT_LOCKED
    err = capsys.readouterr().err
    assert f"pid {proc.pid}" in err and "holder under test" in err
    assert _tree(run) == before
    assert not (tmp_path / "o").exists()


def test_readers_work_while_a_writer_holds_the_run(held_run, tmp_path, capsys):
    run, _ = held_run
    assert main(["pool", "stats", "--run", str(run)]) == 0
    assert "warm" in capsys.readouterr().out
    assert main(["dashboard", str(run), "--out", str(tmp_path / "d.html")]) == 0
    assert (tmp_path / "d.html").stat().st_size > 1000
    assert main(["export", str(run), "--out", str(tmp_path / "nothing")]) != EXIT_LOCKED  # plain export reads only


def test_a_killed_holder_leaves_no_stale_lock(held_run):
    run, proc = held_run
    with pytest.raises(RunLocked):
        with run_lock(run):
            pass
    assert running(run)["pid"] == proc.pid and running(run)["command"] == "holder under test"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # its record stays in the file, but it names a process that is gone
    assert '"holder under test"' in (run / "run.lock").read_text() and running(run) == {}
    with run_lock(run):  # the kernel released it with the process
        with run_lock(run):  # re-entrant within one process
            pass
        assert (run / "run.lock").read_text().startswith("{")
    assert (run / "run.lock").read_text() == "" and running(run) == {}


@pytest.mark.e2e
def test_two_runs_started_at_once_one_is_refused(tmp_path):
    warm = write_llava(tmp_path / "src" / "warm")
    cmd = [sys.executable, "-m", "lifelong.cli", "run", str(ROOT / "configs" / "smoke.yaml"),
           f"runs_dir={tmp_path / 'runs'}", "name=twice", "stream.builtin=none",
           f"stream.datasets=[{{name: warm, train: '{warm}', test: '{warm}'}}]", "eval.max_samples_per_task=4"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
             for _ in range(2)]
    results = [None, None]

    def wait(i):
        results[i] = procs[i].communicate(timeout=600)

    threads = [threading.Thread(target=wait, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, EXIT_LOCKED], [r[1][-2000:] for r in results]
    loser, winner = (0, 1) if codes[0] == EXIT_LOCKED else (1, 0)
    assert f"pid {procs[winner].pid}" in results[loser][1]
    assert "Traceback" not in results[loser][1]
    assert (tmp_path / "runs" / "twice" / "metrics" / "history.json").exists()
