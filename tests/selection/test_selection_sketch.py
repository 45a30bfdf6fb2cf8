"""Batched per-sample gradients and sketches against one-sample-at-a-time autograd."""
import hashlib
import io

import numpy as np
import pytest
import torch
from PIL import Image

from lifelong.data.sample import Sample
from lifelong.models.config import tiny_model_config
from lifelong.selection.projection import ProjectionConfig, RademacherProjector
from lifelong.selection.score import ScoreConfig, Scorer
from lifelong.selection.sketch import SketchConfig


@pytest.fixture(scope="module")
def loaded(model_cache):
    from lifelong.models import load_model

    cfg = tiny_model_config(model_cache)
    m = load_model(cfg)
    # A fresh adapter has B = 0 (so A-gradients vanish); perturb it so both are tested.
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.lora_parameters().values():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return m


def _img(color):
    im = Image.new("RGB", (20, 20), color)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return hashlib.sha256(buf.getvalue()).hexdigest(), im


@pytest.fixture(scope="module")
def data():
    imgs = dict(_img(c) for c in [(200, 0, 0), (0, 200, 0), (0, 0, 200), (90, 90, 90)])
    keys = list(imgs)
    samples = []
    for i in range(7):
        conv = [{"role": "user", "content": ("<image>\n" if i % 3 else "") + "word " * (i + 1) + "?"},
                {"role": "assistant", "content": ["red", "a green one", "blue!", "grey and more words"][i % 4]}]
        samples.append(Sample(id=f"s{i}", dataset="d", task="t", split="train", conversation=conv,
                              images=[keys[i % 4]] if i % 3 else []))
    return samples, imgs.__getitem__


def test_batched_per_sample_grads_equal_single_backward(loaded, data):
    """Hooks over one padded batch == torch.autograd.grad of each sample alone."""
    samples, load = data
    scorer = Scorer(loaded, ScoreConfig(sketch=SketchConfig(layers=[-1], projection=ProjectionConfig(out_dim=32)), experts=["ppl"]), load)
    try:
        batch = loaded.collate(samples, load)
        from lifelong.selection.experts import per_sample_mean
        from lifelong.selection.sketch import only_these_trainable

        with only_these_trainable(loaded.model, scorer.params), torch.enable_grad():
            logits, targets, rows = loaded.response_logits(batch)
            nll = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
            per_sample_mean(nll, rows, len(samples)).sum().backward()
        batched = scorer.grads.flat()  # (B, D)
        for p in scorer.params:
            p.grad = None
        assert batched.shape == (len(samples), scorer.grads.dim)
        for b, s in enumerate(samples):
            single = loaded.collate([s], load)
            loss = loaded.per_sample_loss(single)[0]
            grads = torch.autograd.grad(loss, scorer.params)
            ref = torch.cat([g.flatten() for g in grads])
            torch.testing.assert_close(batched[b], ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))
            assert ref.abs().sum() > 0
        scorer.grads.inputs.clear()
        scorer.grads.grads.clear()
    finally:
        scorer.close()


def test_sketches_equal_one_at_a_time(loaded, data):
    samples, load = data
    cfg = ScoreConfig(sketch=SketchConfig(layers=[-1], projection=ProjectionConfig(out_dim=64, seed=3)), experts=["ppl", "el2n", "grand"])
    scorer = Scorer(loaded, cfg, load)
    try:
        sk, emb, scores = scorer.score_batch(samples)
        for b, s in enumerate(samples):
            sk1, emb1, sc1 = scorer.score_batch([s])
            np.testing.assert_allclose(sk1[0].float().numpy(), sk[b].float().numpy(), atol=2e-3)
            np.testing.assert_allclose(emb1[0].float().numpy(), emb[b].float().numpy(), atol=2e-3)
            for e in cfg.experts:
                assert sc1[e][0].item() == pytest.approx(scores[e][b].item(), rel=1e-4)
        # Sketches are unit rows in fp16; grand is the norm before projection.
        norms = sk.float().norm(dim=1)
        torch.testing.assert_close(norms, torch.ones_like(norms), atol=2e-3, rtol=0)
        assert (scores["grand"] > 0).all()
    finally:
        scorer.close()


def test_sketch_is_projection_of_gradient(loaded, data):
    """sketch = normalise(R^T g) with the seeded R: checked against a materialised R."""
    samples, load = data
    cfg = ScoreConfig(sketch=SketchConfig(layers=[-1], projection=ProjectionConfig(out_dim=16, seed=5, block_rows=7, cache_bytes=0)), experts=["grand"])
    scorer = Scorer(loaded, cfg, load)
    try:
        sk, _, scores = scorer.score_batch(samples[:2])
        D = scorer.grads.dim
        R = RademacherProjector(D, 16, seed=5).matrix()  # (D, 16)
        single = loaded.collate(samples[:1], load)
        g = torch.cat([x.flatten() for x in torch.autograd.grad(loaded.per_sample_loss(single)[0], scorer.params)])
        ref = g.numpy() @ R
        ref /= np.linalg.norm(ref)
        np.testing.assert_allclose(sk[0].float().numpy(), ref, atol=2e-3)
        assert scores["grand"][0].item() == pytest.approx(float(g.norm()), rel=1e-4)
    finally:
        scorer.close()
