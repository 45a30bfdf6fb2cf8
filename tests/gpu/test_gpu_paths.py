"""The CUDA path: score, train, eval and the loop on the GPU (skipped without CUDA).

Every tensor a stage makes must live on the model's device; on a CPU these
tests cannot fail for that reason, so they only run where CUDA is available
(``pytest -m gpu``; eval/gpu_check.sh runs them).
"""
from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

FAMILIES = ["llava", "qwen2_5_vl", "smolvlm", "llava_onevision", "gemma3"]


def _model(model_cache, family, device):
    from lifelong.models import load_model
    from lifelong.models.config import tiny_model_config

    cfg = tiny_model_config(model_cache, "hf" if family != "composed" else "composed", max_length=512, device=device)
    if family != "composed":
        cfg.hf = dataclasses.replace(cfg.hf, tiny=family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_model(cfg)


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("gpu-cache")


@pytest.fixture(scope="module")
def data():
    from tests.models.test_models_families import make_mixed, make_pics  # run from the repo root: python -m pytest

    pics = make_pics()
    return pics, make_mixed(pics)


@pytest.mark.parametrize("family", ["composed", *FAMILIES])
def test_score_on_cuda_matches_cpu(model_cache, data, family):
    from lifelong.selection.score import ScoreConfig, Scorer

    pics, samples = data
    cfg = ScoreConfig(experts=["ppl", "el2n", "entropy", "grand", "ig", "random"])
    out = {}
    for device in ("cpu", "cuda"):
        m = _model(model_cache, family, device)
        scorer = Scorer(m, cfg, pics.__getitem__)
        try:
            out[device] = scorer.score_batch(samples)
        finally:
            scorer.close()
    (sk_c, em_c, sc_c), (sk_g, em_g, sc_g) = out["cpu"], out["cuda"]
    assert sk_g.device.type == "cpu" and torch.allclose(sk_c.float(), sk_g.float(), atol=2e-2)
    for name in sc_c:
        assert torch.allclose(sc_c[name], sc_g[name], rtol=1e-2, atol=1e-3), name
    assert sc_g["ig"][0] == 1.0


@pytest.mark.parametrize("family", ["composed", *FAMILIES])
def test_train_and_generate_on_cuda(model_cache, data, family):
    from lifelong.training.train import TrainConfig, train_round

    pics, samples = data
    m = _model(model_cache, family, "cuda")
    before = {n: p.detach().clone() for n, p in m.trainable_parameters().items()}
    assert all(p.device.type == "cuda" for p in before.values())
    losses = train_round(m, samples * 2, pics.__getitem__, TrainConfig(batch_size=3, progress=False), 1)
    assert losses and all(torch.isfinite(torch.tensor(l)).all() for l in losses)
    assert any(not torch.equal(before[n], p) for n, p in m.trainable_parameters().items())
    answers = m.generate(samples, pics.__getitem__, max_new_tokens=4, batch_size=3)
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)


def test_loop_on_cuda_with_a_proxy(tmp_path):
    """Every stage of two rounds (score with a proxy, select, train, prune, eval) on the GPU."""
    import yaml

    from lifelong.cli import main
    from tests.test_loop_families import _config

    path = _config(tmp_path, "qwen2_5_vl", proxy=True)
    cfg = yaml.safe_load(path.read_text())
    cfg["model"]["device"] = "cuda"
    cfg["score"]["model"]["device"] = "cuda"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path)]) == 0
