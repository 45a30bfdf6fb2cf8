"""bench_sketch and bench_clusters run end to end on a tiny model and the small built-in stream."""
import dataclasses
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "smoke.yaml"


def load(name):
    return importlib.import_module(f"eval.{name}")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, model_cache):
    return tmp_path_factory.mktemp("data"), model_cache


def common(dirs):
    data, cache = dirs
    return ["--config", str(SMOKE), "--scale", "small", "--data", str(data), "--set", f"model.cache_dir={cache}",
            "--threads", "1"]


def test_bench_sketch_tiny(dirs, tmp_path):
    out = tmp_path / "s.json"
    res = load("bench_sketch").main(common(dirs) + ["--samples", "8", "--batch-size", "4", "--out", str(out)])
    assert set(res["methods"]) == {"score_full", "score_sketch", "train", "bs1_loop"}
    assert all(m["samples"] == 8 and m["samples_per_s"] > 0 for m in res["methods"].values())
    assert len(res["per_batch_wall_s"]) == 2
    # the bs-1 loop computes the same sketches as the batched pass (fp16 rounding apart)
    assert res["bs1_vs_batched_sketch"]["min_cosine"] > 0.999
    assert set(res["ratios"]) == {"wall", "cpu", "median_per_batch"}
    assert json.loads(out.read_text())["sketch"]["layers"] == [-1]


def test_bench_clusters_tiny(dirs, tmp_path):
    res = load("bench_clusters").main(common(dirs) + [
        "--per-task", "4", "--variants", "[-1]", "[-1,-2]", "--cluster-seeds", "1", "--cost-batches", "1",
        "--k-range", "3", "7", "--no-progress", "--out", str(tmp_path / "c.json")])
    assert res["samples"] == 28 and set(res["tasks"].values()) == {4}
    assert set(res["results"]) == {"sketch[-1]", "sketch[-1,-2]", "pooled_hidden"}
    for row in res["results"].values():
        assert 0.0 <= row["fixed_k"]["nmi_mean"] <= 1.0 and row["fixed_k"]["k"] == [7]
        assert row["auto_k"]["k"][0] in (3, 7)
    assert res["results"]["sketch[-1,-2]"]["grad_dim"] == 2 * res["results"]["sketch[-1]"]["grad_dim"]


def test_variant_sketches_equal_a_scoring_pass_with_those_layers(dirs):
    """A variant cut out of the union pass is the sketch a pass with only its layers writes."""
    import torch

    from lifelong.selection.score import Scorer

    bench_sketch, bench_clusters = load("bench_sketch"), load("bench_clusters")
    data, cache = dirs
    pool = bench_sketch.stream_pool(data, "small", 0)
    loaded, rc = bench_sketch.load_bench_model(SMOKE, [f"model.cache_dir={cache}"], 1)
    with torch.no_grad():  # a trained adapter (B != 0), so A-gradients are non-zero too
        g = torch.Generator().manual_seed(0)
        for p in loaded.lora_parameters().values():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    samples = bench_sketch.mixed_samples(pool, 6, 1)
    sketches, embeds, dims = bench_clusters.sketch_variants(loaded, rc, samples, pool.load_image, [[-1], [-2]],
                                                            2**30, progress=False)
    for layers in ([-1], [-2]):
        cfg = dataclasses.replace(rc.score, experts=["grand"],
                                  sketch=dataclasses.replace(rc.score.sketch, layers=layers))
        scorer = Scorer(loaded, cfg, pool.load_image)
        try:
            want, emb, _ = scorer.score_batch(samples)
        finally:
            scorer.close()
        got = sketches[str(layers[0])]
        assert dims[str(layers[0])] == scorer.grads.dim
        np.testing.assert_allclose(got.astype(np.float32), want.float().numpy(), atol=2e-3)
        np.testing.assert_allclose(embeds.astype(np.float32), emb.float().numpy(), atol=2e-3)
    pool.close()
