"""The lifelong loop: a whole smoke run, and crash/resume equivalence per stage."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.numpy import load_file

from lifelong.data.pool import Pool
from lifelong.export.lineage import round_files

pytestmark = pytest.mark.e2e  # a whole run of the loop: in the default suite (-m 'not e2e' leaves it out)

ROOT = Path(__file__).resolve().parents[1]
# Three datasets, a cap that forces pruning in round 3, small shards to kill between.
SHORT = ["stream.builtin_config.order=[vqa_shape,digits,text_only]", "prune.cap=80", "score.shard_size=16",
         "eval.max_samples_per_task=4"]


def _cmd(runs_dir, name, extra=()):
    return [sys.executable, "-m", "lifelong.cli", "run", str(ROOT / "configs" / "smoke.yaml"),
            f"runs_dir={runs_dir}", f"name={name}", *SHORT, *extra]


def _env(**kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", **kw)
    env.pop("LIFELONG_FAULT", None)
    env.update(kw)
    return env


def _state(run_dir: Path) -> dict:
    """Everything that must not depend on whether the run was interrupted."""
    out = {}
    for t in (1, 2, 3):
        out[f"selected{t}"] = json.loads((run_dir / f"rounds/{t}/select/selection.json").read_text())["ids"]
        out[f"pruned{t}"] = round_files(run_dir, t)["prune"]["records"]  # earlier rounds': pruned.json.gz
    with Pool(run_dir / "pool") as pool:
        out["active"] = pool.ids()
        out["ledger"] = [(r["sample_id"], r["round"], r["reason"]) for r in pool.ledger()]
        out["check"] = pool.check()
    return out


def _adapter(run_dir: Path, t: int) -> dict:
    return load_file(run_dir / f"adapters/round_{t}/adapter_model.safetensors")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    subprocess.run(_cmd(runs, "ref"), check=True, env=_env(), capture_output=True, cwd=ROOT)
    return runs / "ref"


def test_uninterrupted_short_run(reference):
    st = _state(reference)
    assert st["check"] == []
    assert len(st["active"]) == 80  # 3 x 40 ingested, capped at 80 in round 3
    assert len(st["ledger"]) == 40 and all(r[1] == 3 for r in st["ledger"])
    assert [len(st[f"selected{t}"]) for t in (1, 2, 3)] == [20, 40, 60]  # 50% of 40, 80, 120
    hist = json.loads((reference / "metrics/history.json").read_text())
    assert len(hist["accuracy"]) == 4 and all(len(r) == 3 for r in hist["accuracy"])
    assert (reference / "dashboard.html").exists()
    # Disk stays bounded: only the last round's score store is left, no shard of any round.
    assert [sorted(p.name for p in (reference / f"rounds/{t}/score").iterdir()) for t in (1, 2, 3)] == [
        ["done"], ["done"], ["columns", "done"]]


def _kill_when(proc, path_glob: str, run_dir: Path, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if list(run_dir.glob(path_glob)):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.01)
    return False


@pytest.mark.slow  # kill-and-resume across processes (tens of seconds): CI's slow set
def test_killed_run_resumes_to_the_same_result(reference, tmp_path):
    """One run killed three times, each at a worst moment, resumed after each: the uninterrupted result.

    Mid-stage (round 2's scoring, some shards done), then with a stage's work
    done and its marker not yet written (round 2's training, round 3's pruning).
    """
    run_dir = tmp_path / "k"
    proc = subprocess.Popen(_cmd(tmp_path, "k"), env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    assert _kill_when(proc, "rounds/2/score/shards/shard_00001.done", run_dir)
    assert not (run_dir / "rounds/2/score/done").exists()
    for t, where in ((2, "train"), (3, "prune")):
        r = subprocess.run(_cmd(tmp_path, "k"), env=_env(LIFELONG_FAULT=f"{t}:{where}"), cwd=ROOT, capture_output=True)
        assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
        assert not (run_dir / f"rounds/{t}/{where}/done").exists()
        assert (run_dir / f"rounds/{t}/{'score' if where == 'train' else 'train'}/done").exists()  # resumed past
    subprocess.run(_cmd(tmp_path, "k"), check=True, env=_env(), capture_output=True, cwd=ROOT)
    assert _state(run_dir) == _state(reference)
    for t in (1, 2, 3):
        a, b = _adapter(run_dir, t), _adapter(reference, t)
        assert a.keys() == b.keys()
        for k in a:
            assert abs(a[k] - b[k]).max() <= 1e-6, (t, k)


def test_resume_with_a_different_config_is_refused(reference, tmp_path):
    r = subprocess.run(_cmd(reference.parent, "ref", ["train.lr=0.5"]), env=_env(), cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "different config" in r.stderr and "train.lr" in r.stderr


@pytest.mark.slow  # kill-and-resume across processes (tens of seconds): CI's slow set
def test_merge_adapter_policy_resumes_to_the_same_result(tmp_path):
    """Merge policy: each round's adapter is folded into the base; a resume replays the merges."""
    extra = ["adapter_policy=merge", "stream.builtin_config.order=[vqa_shape,digits]"]
    ref = subprocess.run(_cmd(tmp_path, "m_ref", extra), env=_env(), cwd=ROOT, capture_output=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    r = subprocess.run(_cmd(tmp_path, "m_kill", extra), env=_env(LIFELONG_FAULT="2:train"), cwd=ROOT,
                       capture_output=True)
    assert r.returncode == -signal.SIGKILL
    subprocess.run(_cmd(tmp_path, "m_kill", extra), check=True, env=_env(), cwd=ROOT, capture_output=True)
    a, b = _adapter(tmp_path / "m_kill", 2), _adapter(tmp_path / "m_ref", 2)
    assert all(abs(a[k] - b[k]).max() <= 1e-6 for k in a)
    # Round 2 trained a fresh adapter on the merged base: it differs from round 1's.
    one = _adapter(tmp_path / "m_ref", 1)
    assert any(abs(one[k] - b[k]).max() > 1e-4 for k in b)
    for name in ("m_ref", "m_kill"):
        rows = json.loads((tmp_path / name / "metrics/history.json").read_text())["accuracy"]
        assert len(rows) == 3
    assert (json.loads((tmp_path / "m_ref/metrics/history.json").read_text())["accuracy"]
            == json.loads((tmp_path / "m_kill/metrics/history.json").read_text())["accuracy"])
