"""Uniform eviction (prune.mode uniform, the random_prune baseline): exact count, seeded, and
through the prune stage without embeddings."""
from __future__ import annotations

import types

import numpy as np
import pytest

from lifelong.pruning.semdedup import PruneConfig, semdedup
from lifelong.pruning.uniform import evict_uniform


def test_removes_exactly_down_to_the_cap_seeded():
    res = evict_uniform(100, 70, seed=3)
    assert res.index.size == 30 and np.all(np.diff(res.index) > 0) and res.index.max() < 100
    assert np.array_equal(res.index, evict_uniform(100, 70, seed=3).index)
    assert not np.array_equal(res.index, evict_uniform(100, 70, seed=4).index)
    assert set(res.reason) == {"uniform"} and (res.cluster == -1).all() and (res.duplicate_of == -1).all()
    assert np.isneginf(res.max_sim).all()
    assert evict_uniform(50, 70, seed=0).index.size == 0 and evict_uniform(50, None, seed=0).index.size == 0


def test_uniform_is_a_prune_mode_that_semdedup_refuses():
    cfg = PruneConfig(cap=1, mode="uniform")
    with pytest.raises(ValueError, match="uniform"):
        semdedup(np.eye(3, dtype=np.float32), np.zeros(3, np.int64), np.ones((1, 3), np.float32), cfg)


def test_the_prune_stage_evicts_uniformly_for_random_prune(tmp_path):
    from lifelong import stages
    from lifelong.data.ingest import IngestConfig, ingest
    from lifelong.data.pool import Pool
    from lifelong.data.stream import prepare_stream
    from lifelong.layout import RunLayout
    from lifelong.run_config import load_run_config
    from lifelong.seeding import round_config
    from lifelong.selection.strategies import get_strategy

    (info,) = prepare_stream(tmp_path / "data", "small", 0, ["digits"])
    cfg = load_run_config(None, ["prune.cap=25", "select.strategy=random_prune"])
    with Pool(tmp_path / "pool") as pool:
        ingest(pool, tmp_path / "data" / info.train, cfg=IngestConfig(progress=False))
        before = pool.ids()
        run = types.SimpleNamespace(pool=pool, layout=RunLayout(tmp_path / "run"), cfg=cfg,
                                    strategy=get_strategy("random_prune"), seeded=lambda t: round_config(cfg, t))
        d = run.layout.pruned(1).parent
        d.mkdir(parents=True, exist_ok=True)
        info_out = stages.prune(run, 1, d, None, [])  # no embeddings: the run has no model
        assert info_out["pruned"] == len(before) - 25 and pool.count() == 25
        assert {r["reason"] for r in pool.ledger()} == {"uniform"}
