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
    one = _run([], tmp_path, "one")
    two = _run(LAUNCH, tmp_path, "two")
    for rel in ["rounds/0/setup/predictions.jsonl", "rounds/1/select/selection.json", "rounds/1/prune/pruned.json"]:
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel
    # Round 1's scores, written from two processes' shards (its column store is deleted by later rounds;
    # the selection stage's table keeps every sample's scores). Later rounds' models differ (batch 2 x).
    import pyarrow.parquet as pq

    a, b = (pq.read_table(d / "rounds/1/select/scores.parquet") for d in (one, two))
    assert a.num_rows == 40 and a.equals(b)
    assert (two / "rounds/3/score/columns/embed.npy").exists()  # the last round's store is there
    for t in (1, 2, 3):
        for stage in ("ingest", "score", "select", "train", "prune", "eval", "report"):
            assert (two / f"rounds/{t}/{stage}/done").exists()
        assert (two / f"adapters/round_{t}/adapter_model.safetensors").exists()
        preds = (two / f"rounds/{t}/eval/predictions.jsonl").read_text().splitlines()
        assert len(preds) == 12 and len({json.loads(p)["id"] for p in preds}) == 12
    assert not list(two.rglob("*.tmp"))
