"""``lifelong run`` under two processes: the whole smoke stream, end to end (slow, opt-in).

Round 1 scores the pool with the round-0 adapter, which both runs share, so
its shards, selection and pruning decision must be identical to a one-process
run; evaluation before training (round 0) must give the same predictions.
Later rounds train with an effective batch of 2 x train.batch_size, so they
are only checked for completeness.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # a whole run of the loop: in the default suite (-m 'not e2e' leaves it out)

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["stream.builtin_config.order=[vqa_shape,digits,text_only]", "prune.cap=80", "score.shard_size=16",
        "eval.max_samples_per_task=4"]
LAUNCH = ["-m", "accelerate.commands.launch", "--config_file", str(ROOT / "configs/accelerate/cpu_2proc.yaml")]


def _run(prefix, runs, name):
    cmd = [sys.executable, *prefix, "-m", "lifelong.cli", "run", str(ROOT / "configs/smoke.yaml"),
           f"runs_dir={runs}", f"name={name}", *ARGS]
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="1")
    env.pop("LIFELONG_FAULT", None)
    p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return runs / name


@pytest.mark.slow
def test_smoke_run_two_processes(tmp_path):
    from lifelong.layout import RunLayout, read_json
    from lifelong.loop import ROUND_STAGES

    one, two = (RunLayout(_run(prefix, tmp_path, name)) for prefix, name in (([], "one"), (LAUNCH, "two")))
    # Read through the run's own layout and readers (an earlier round's prune record is stored gzipped).
    assert one.predictions(0).read_bytes() == two.predictions(0).read_bytes()
    for record in (one.selection, one.pruned):
        a, b = read_json(record(1)), read_json(getattr(two, record.__name__)(1))
        assert a is not None and a == b, record.__name__
    # Round 1's scores, written from two processes' shards (its column store is deleted by later rounds,
    # and its selection table is cut to the selected rows once a later round reports). Later rounds'
    # models differ (batch 2 x).
    import pyarrow.parquet as pq

    a, b = (pq.read_table(r.scores_table(1)) for r in (one, two))
    assert a.num_rows == len(read_json(one.selection(1))["ids"]) > 0 and a.equals(b)
    assert (two.score_columns(3) / "embed.npy").exists()  # the last round's store is there
    for t in (1, 2, 3):
        for stage in ROUND_STAGES:
            assert two.marker(t, stage).exists(), (t, stage)
        assert two.has_adapter(t)
        preds = two.predictions(t).read_text().splitlines()
        assert len(preds) == 12 and len({json.loads(p)["id"] for p in preds}) == 12
    assert not list(two.root.rglob("*.tmp"))
