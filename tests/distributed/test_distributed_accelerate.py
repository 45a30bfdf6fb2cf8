"""Two CPU processes (gloo) against one: scoring and evaluation identical, a training round matches.

Each side is a subprocess running ``dist_worker.py``: once alone, once under
``accelerate launch`` with two processes. accelerate's ``--cpu`` flag alone
starts one process without MPI, so the multi-process run uses the torchrun
launcher (``--multi_gpu``) with ``ACCELERATE_USE_CPU=1`` (see lifelong/distributed.py).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from lifelong.selection.score import load_scores

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from dist_worker import N_SAMPLES, SHARD  # noqa: E402

# Two processes under accelerate launch, end to end: CI's slow set (the module's runs take ~20 s).
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]


def _run(cmd, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="1", PYTHONPATH=str(ROOT))
    p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, model_cache):
    """(one-process output dir, two-process output dir); both read the session's model cache."""
    base = tmp_path_factory.mktemp("dist")
    cache = model_cache
    worker = str(HERE / "dist_worker.py")
    _run([sys.executable, worker, str(base / "one"), str(cache)])
    _run([*LAUNCH, worker, str(base / "two"), str(cache)])
    return base / "one", base / "two"


def test_two_processes_really_ran(runs):
    _, two = runs
    worlds = [json.loads((two / f"world_rank{r}.json").read_text()) for r in (0, 1)]
    assert worlds == [{"rank": 0, "world": 2}, {"rank": 1, "world": 2}]


def test_scoring_two_processes_identical_to_one(runs):
    one, two = runs
    a = load_scores(one / "shards", N_SAMPLES, SHARD)
    b = load_scores(two / "shards", N_SAMPLES, SHARD)
    assert a.ids == b.ids == [f"s{i:02d}" for i in range(N_SAMPLES)]
    # Bit-identical: every shard is computed by exactly one process with the same batches.
    np.testing.assert_array_equal(a.sketches, b.sketches)
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    assert sorted(a.scores) == sorted(b.scores) == sorted(["ppl", "el2n", "entropy", "grand", "ig", "random"])
    for k in a.scores:
        np.testing.assert_array_equal(a.scores[k], b.scores[k], err_msg=k)
    assert np.abs(a.sketches.astype(np.float32)).sum() > 0


def test_training_round_two_processes_matches_one(runs):
    """2 x batch 4 (DDP) == 1 x batch 8: same steps, same loss, same adapter within 1e-4 of the update."""
    one, two = runs
    init = load_file(one / "adapter_init" / "adapter_model.safetensors")
    single = load_file(one / "adapter_rank0" / "adapter_model.safetensors")
    r0 = load_file(two / "adapter_rank0" / "adapter_model.safetensors")
    r1 = load_file(two / "adapter_rank1" / "adapter_model.safetensors")
    assert sorted(single) == sorted(r0) == sorted(r1)
    assert any("projector" in k for k in single)  # the projector copy trains too
    # The processes saw different samples; identical weights mean gradients were all-reduced.
    for k in r0:
        np.testing.assert_array_equal(r0[k], r1[k], err_msg=k)
    update = np.sqrt(sum(((single[k] - init[k]) ** 2).sum() for k in single))
    diff = np.sqrt(sum(((single[k] - r0[k]) ** 2).sum() for k in single))
    assert update > 1e-3  # training moved the adapter
    assert diff <= 1e-4 * update, (diff, update)
    l1 = json.loads((one / "losses_rank0.json").read_text())
    l2 = json.loads((two / "losses_rank0.json").read_text())
    assert [s for s, _ in l1] == [s for s, _ in l2] == [1, 2]
    np.testing.assert_allclose([v for _, v in l1], [v for _, v in l2], rtol=1e-5)


def test_sharded_generation_two_processes_identical_to_one(runs):
    one, two = runs
    single = json.loads((one / "answers_rank0.json").read_text())
    assert len(single) == N_SAMPLES
    # Every process returns all answers, in sample order, gathered from both halves.
    for r in (0, 1):
        assert json.loads((two / f"answers_rank{r}.json").read_text()) == single
