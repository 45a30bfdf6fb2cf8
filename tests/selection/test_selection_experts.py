"""Selector experts: hand-computed values, the registry contract, and the grounding score."""
import hashlib
import io
import math

import pytest
import torch
from PIL import Image

from lifelong.data.sample import Sample
from lifelong.selection.experts import EXPERTS, PassOutputs, compute


def _outputs():
    """3 samples, V = 3: sample 0 has tokens a, b; sample 1 has token c; sample 2 none."""
    logits = torch.tensor([[0.0, 0.0, 0.0], [math.log(2), 0.0, 0.0], [0.0, 0.0, 0.0]])
    return PassOutputs(
        logits=logits, targets=torch.tensor([0, 1, 2]), rows=torch.tensor([0, 0, 1]), batch_size=3,
        grad_norm=torch.tensor([1.5, 0.0, 2.0]), blank_nll=torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64),
        has_image=torch.tensor([True, True, False]), clip_sim=torch.tensor([0.1, -0.2, 0.0]),
        ids=["a", "b", "c"], seed=1,
    )


def test_hand_computed_values():
    s = compute(["ppl", "el2n", "entropy", "grand", "ig"], _outputs())
    # token a: p = (1/3,1/3,1/3), y = 0;  token b: p = (1/2,1/4,1/4), y = 1;  token c like a with y = 2.
    nll_a, nll_b = math.log(3), math.log(4)
    ent_a, ent_b = math.log(3), 0.5 * math.log(2) + 0.5 * math.log(4)
    el2n_a, el2n_b = math.sqrt(6 / 9), math.sqrt(0.25 + 0.75**2 + 0.25**2)
    assert s["ppl"].tolist() == pytest.approx([math.sqrt(12), 3.0, 1.0])
    assert s["entropy"].tolist() == pytest.approx([(ent_a + ent_b) / 2, ent_a, 0.0])
    assert s["el2n"].tolist() == pytest.approx([(el2n_a + el2n_b) / 2, el2n_a, 0.0])
    assert s["grand"].tolist() == pytest.approx([1.5, 0.0, 2.0])
    nll0 = (nll_a + nll_b) / 2
    assert s["ig"].tolist() == pytest.approx([math.exp(2.0 - nll0), math.exp(1.0 - math.log(3)), 1.0])


@pytest.mark.parametrize("name", sorted(EXPERTS))
def test_every_expert_gives_one_finite_float_per_sample(name):
    """The registry contract: (B,) float64, NaN-free, deterministic."""
    out = _outputs()
    v = compute([name], out)[name]
    assert v.shape == (3,) and v.dtype == torch.float64
    assert torch.isfinite(v).all()
    assert torch.equal(v, compute([name], _outputs())[name])
    assert EXPERTS[name].doc


def test_random_expert_depends_on_id_and_seed_only():
    a = compute(["random"], _outputs())["random"]
    out = _outputs()
    out.ids = ["c", "b", "a"]
    b = compute(["random"], out)["random"]
    assert b.tolist() == a.flip(0).tolist()
    out.seed = 2
    assert compute(["random"], out)["random"].tolist() != b.tolist()
    assert ((a >= 0) & (a < 1)).all()


def _png(color):
    im = Image.new("RGB", (16, 16), color)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return hashlib.sha256(buf.getvalue()).hexdigest(), im


def test_image_grounding_after_training_on_image_dependent_data(model_cache):
    """ig > 1 where the answer depends on the image (after a few steps), exactly 1 for text-only."""
    from lifelong.models import load_model
    from lifelong.models.config import LoraSettings, tiny_model_config
    from lifelong.selection.score import ScoreConfig, Scorer
    from lifelong.training.train import TrainConfig, train_round

    cfg = tiny_model_config(model_cache, lora=LoraSettings(rank=8, alpha=16.0, dropout=0.0), max_length=64,
                            system_prompt="")
    loaded = load_model(cfg)
    imgs = dict([_png((220, 20, 20)), _png((20, 20, 220))])
    keys = list(imgs)
    answers = ["red", "blue"]
    train = [Sample(id=f"c{i}", dataset="d", task="color", split="train", images=[keys[i % 2]],
                    conversation=[{"role": "user", "content": "<image>\nWhat color is it?"},
                                  {"role": "assistant", "content": answers[i % 2]}]) for i in range(16)]
    text = Sample(id="t", dataset="d", task="math", split="train",
                  conversation=[{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}])
    train_round(loaded, train, imgs.__getitem__,
                TrainConfig(epochs=25, batch_size=8, lr=3e-3, warmup_ratio=0.0, progress=False), round_=1)
    scorer = Scorer(loaded, ScoreConfig(experts=["ig", "ppl"]), imgs.__getitem__)
    try:
        _, _, s = scorer.score_batch([train[0], train[1], text])
    finally:
        scorer.close()
    assert s["ig"][0] > 1.05 and s["ig"][1] > 1.05, s["ig"]
    assert s["ig"][2].item() == 1.0
