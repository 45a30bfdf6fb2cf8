"""score.refresh < 1: a round scores new samples and the stalest share of the old ones, and reuses the rest."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lifelong.config import ConfigError
from lifelong.loop import FAULT_ENV
from lifelong.run_config import load_run_config
from lifelong.selection.score import ScoreResult, gather_scores, plan_rescoring

ROOT = Path(__file__).resolve().parents[2]
SHORT = ["stream.builtin_config.order=[vqa_shape,digits,text_only]", "prune.cap=80", "score.shard_size=16",
         "eval.max_samples_per_task=4", "score.refresh=0.5"]


def test_plan_scores_new_samples_and_the_stalest_old_ones():
    ids = ["a", "b", "c", "d", "e", "f"]
    prev = {"a": 1, "b": 2, "c": 1, "d": 3, "z": 1}  # z left the pool
    todo, src = plan_rescoring(ids, prev, 4, 0.5)
    # 4 old samples, ceil(0.5 * 4) = 2 re-scored: a and c (round 1) before b (2) and d (3); e, f are new.
    assert todo == [0, 2, 4, 5]
    assert src == {"a": 4, "b": 2, "c": 4, "d": 3, "e": 4, "f": 4}
    assert list(src) == ids  # pool order
    assert plan_rescoring(ids, prev, 4, 0.0)[0] == [4, 5]
    assert plan_rescoring(ids, prev, 4, 1.0)[0] == [0, 1, 2, 3, 4, 5]
    # ceil: 0.3 of 4 old samples is 1.2 -> 2; ties in age go by pool order.
    assert plan_rescoring(ids, {x: 1 for x in "abcd"}, 2, 0.3)[0] == [0, 1, 4, 5]
    assert plan_rescoring(ids, {}, 1, 0.0)[0] == list(range(6))  # nothing scored yet: everything


def _res(ids, base):
    n = len(ids)
    return ScoreResult(list(ids), np.full((n, 3), base, np.float16) + np.arange(n, dtype=np.float16)[:, None],
                       {"ppl": base + np.arange(n, dtype=np.float64), "el2n": -base - np.arange(n, dtype=np.float64)},
                       np.full((n, 2), -base, np.float16))


def test_gather_takes_each_sample_from_the_round_that_scored_it():
    rounds = {1: _res(["a", "b", "c"], 10.0), 3: _res(["c", "d"], 30.0)}
    out = gather_scores(["d", "a", "c"], {"d": 3, "a": 1, "c": 3}, rounds.__getitem__)
    assert out.ids == ["d", "a", "c"]
    np.testing.assert_array_equal(out.scores["ppl"], [31.0, 10.0, 30.0])
    np.testing.assert_array_equal(out.scores["el2n"], [-31.0, -10.0, -30.0])
    np.testing.assert_array_equal(out.sketches[:, 0], np.array([31, 10, 30], np.float16))
    np.testing.assert_array_equal(out.embeddings[:, 0], np.array([-30, -10, -30], np.float16))
    with pytest.raises(RuntimeError, match="round 1's scoring pass has no scores for sample d"):
        gather_scores(["d"], {"d": 1}, rounds.__getitem__)


def test_refresh_outside_zero_one_is_refused():
    with pytest.raises((ConfigError, ValueError), match="score.refresh must be in"):
        load_run_config(ROOT / "configs" / "smoke.yaml", ["score.refresh=1.5"])


def _cmd(runs_dir, name):
    return [sys.executable, "-m", "lifelong.cli", "run", str(ROOT / "configs" / "smoke.yaml"),
            f"runs_dir={runs_dir}", f"name={name}", *SHORT]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The finished run; next to it ``mid``, a copy as it was when round 2's evaluation ended (before
    round 2's report cut round 1's scores table and round 3's scoring deleted round 2's sources)."""
    runs = tmp_path_factory.mktemp("runs")
    killed = subprocess.run(_cmd(runs, "ref"), capture_output=True, cwd=ROOT, env={**os.environ, FAULT_ENV: "2:eval"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    shutil.copytree(runs / "ref", runs / "mid")
    subprocess.run(_cmd(runs, "ref"), check=True, capture_output=True, cwd=ROOT)  # resumes at round 2's eval
    return runs / "ref"


@pytest.mark.e2e
def test_a_run_rescores_half_of_the_old_pool_per_round(run):
    mid = run.parent / "mid"

    def info(t):
        return json.loads((run / f"rounds/{t}/score/done").read_text())

    def sources(t):
        return json.loads(((mid if t < 3 else run) / f"rounds/{t}/score/sources.json").read_text())

    # Round 1: 40 new samples. Round 2: 40 new + 20 of the 40 old. Round 3: 40 new + 40 of the 80 old.
    assert [info(t)["n"] for t in (1, 2, 3)] == [40, 60, 80]
    s2, s3 = sources(2), sources(3)
    assert len(s2) == 80 and sorted(s2.values()).count(1) == 20
    # Stalest first: every sample still holding round-1 scores after round 2 is re-scored in round 3.
    assert all(s3[x] == 3 for x, r in s2.items() if r == 1)
    assert len(s3) == 120 and sum(r == 3 for r in s3.values()) == 80
    # Selection worked on the whole pool, with reused rows bit-identical to the round that scored them
    # (round 1's own selection table holds round 1's scores of all of its samples).
    sel = json.loads((run / "rounds/2/select/selection.json").read_text())
    assert sel["pool_size"] == 80 and sel["budget"] == 40
    import pyarrow.parquet as pq

    one = pq.read_table(mid / "rounds/1/select/scores.parquet").to_pydict()
    before = dict(zip(one["id"], one["score_ppl"]))
    kept = [x for x, r in s2.items() if r == 1]
    assert len(kept) == 20
    table = pq.read_table(mid / "rounds/2/select/scores.parquet").to_pydict()
    ppl = dict(zip(table["id"], table["score_ppl"]))
    assert len(ppl) == 80
    assert all(ppl[x] == before[x] for x in kept)
    rescored = [x for x, r in s2.items() if r == 2 and x in before]
    assert len(rescored) == 20 and any(ppl[x] != before[x] for x in rescored)  # round 2's model scored these


@pytest.mark.e2e
def test_a_refresh_run_keeps_only_the_last_rounds_score_store(run):
    """Round 3's store holds every active sample's row (copied forward), so earlier stores and every shard are gone."""
    from lifelong.selection.score_store import open_scores

    for t in (1, 2):  # round 3's sources.json says which round last scored each sample
        assert sorted(p.name for p in (run / f"rounds/{t}/score").iterdir()) == ["done"]
    assert sorted(p.name for p in (run / "rounds/3/score").iterdir()) == ["columns", "done", "sources.json"]
    res = open_scores(run / "rounds/3/score/columns")
    assert isinstance(res.sketches, np.memmap) and isinstance(res.scores["ppl"], np.memmap)
    assert res.ids == list(json.loads((run / "rounds/3/score/sources.json").read_text()))
    import pyarrow.parquet as pq

    table = pq.read_table(run / "rounds/3/select/scores.parquet").to_pydict()
    np.testing.assert_array_equal(np.asarray(table["score_ppl"]), res.scores["ppl"])


@pytest.mark.slow  # kill-and-resume across processes (tens of seconds): CI's slow set
@pytest.mark.e2e
def test_a_killed_refresh_run_resumes_to_the_same_selections(run, tmp_path):
    proc = subprocess.Popen(_cmd(tmp_path, "k"), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if (tmp_path / "k/rounds/3/score/shards/shard_00001.done").exists():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert not (tmp_path / "k/rounds/3/score/done").exists()
    subprocess.run(_cmd(tmp_path, "k"), check=True, capture_output=True, cwd=ROOT)
    for t in (1, 2, 3):
        a = json.loads((tmp_path / f"k/rounds/{t}/select/selection.json").read_text())["ids"]
        b = json.loads((run / f"rounds/{t}/select/selection.json").read_text())["ids"]
        assert a == b, t
    assert (json.loads((tmp_path / "k/rounds/3/score/sources.json").read_text())
            == json.loads((run / "rounds/3/score/sources.json").read_text()))


@pytest.mark.e2e
def test_pruning_embeddings_come_from_one_model(run):
    """Round 3 prunes (120 > cap 80) under refresh=0.5: its embeddings are one forward pass
    of round 3's model over the pool, not the scoring rows gathered from rounds 1-3."""
    from lifelong import stages
    from lifelong.loop import Run
    from lifelong.selection.score import embed_samples

    pruned = json.loads((run / "rounds/3/prune/pruned.json").read_text())
    assert pruned["pool_size"] == 120 and len(pruned["records"]) == 40
    assert {r["reason"] for r in pruned["records"]} <= {"semdedup_duplicate", "semdedup_thin"}
    r = Run(load_run_config(run))
    ids = r.pool.ids()
    assert len(ids) == 80
    # a removed duplicate's kept twin is still in the pool
    dups = [x for x in pruned["records"] if x["reason"] == "semdedup_duplicate"]
    assert all(x["duplicate_of"] in set(ids) for x in dups)
    emb = stages.embeddings(r, 3, ids)
    direct = embed_samples(r.model(3), r.pool.get(ids), r.pool.load_image, r.cfg.score, progress=False)
    np.testing.assert_allclose(emb, direct, atol=1e-6)
    # the gathered rows of older rounds' models differ: mixing them would compare unlike embeddings
    gathered = stages.scores(r, 3)
    row = {x: i for i, x in enumerate(gathered.ids)}
    sources = json.loads((run / "rounds/3/score/sources.json").read_text())
    old = [i for i, x in enumerate(ids) if sources[x] < 3]
    assert old
    diff = np.abs(gathered.embeddings[[row[ids[i]] for i in old]].astype(np.float32) - direct[old]).max()
    assert diff > 1e-3
