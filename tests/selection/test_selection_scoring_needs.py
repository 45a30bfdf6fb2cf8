"""The scoring pass computes what the strategy reads: a single-expert strategy gets no sketches and no backward."""
import hashlib
import json
import io

import numpy as np
import pytest
import torch
from PIL import Image

from lifelong.data.sample import Sample
from lifelong.models.config import tiny_model_config
from lifelong.selection.projection import ProjectionConfig
from lifelong.selection.score import ScoreConfig, load_scores, score_samples
from lifelong.selection.sketch import SketchConfig
from lifelong.selection.strategies import SelectConfig, SelectionInput, get_strategy


@pytest.fixture(scope="module")
def loaded(model_cache):
    from lifelong.models import load_model

    m = load_model(tiny_model_config(model_cache))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.lora_parameters().values():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return m


@pytest.fixture(scope="module")
def data():
    imgs = {}
    for c in [(200, 0, 0), (0, 200, 0), (0, 0, 200)]:
        im = Image.new("RGB", (20, 20), c)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        imgs[hashlib.sha256(buf.getvalue()).hexdigest()] = im
    keys = list(imgs)
    samples = [Sample(id=f"s{i}", dataset="d", task="t", split="train",
                      conversation=[{"role": "user", "content": ("<image>\n" if i % 2 else "") + "word " * (i % 5 + 1)},
                                    {"role": "assistant", "content": ["red", "a green one", "blue!"][i % 3]}],
                      images=[keys[i % 3]] if i % 2 else []) for i in range(12)]
    return samples, imgs.__getitem__


CFG = ScoreConfig(sketch=SketchConfig(layers=[-1], projection=ProjectionConfig(out_dim=16), batch_size=4),
                  experts=["ppl", "el2n", "grand", "ig", "random"], shard_size=8)


@pytest.mark.parametrize("expert", ["ppl", "grand"])
def test_single_expert_pass_equals_the_full_pass_on_its_expert(loaded, data, tmp_path, expert):
    samples, load = data
    score_samples(loaded, samples, load, CFG, tmp_path / "full", progress=False)
    full = load_scores(tmp_path / "full", len(samples), CFG.shard_size)
    strat = get_strategy(expert)
    assert strat.experts == (expert,) and not strat.sketches
    cut = strat.score_config(CFG)
    assert cut.experts == [expert] and CFG.experts == ["ppl", "el2n", "grand", "ig", "random"]
    score_samples(loaded, samples, load, cut, tmp_path / "cheap", progress=False, sketch=strat.sketches)
    cheap = load_scores(tmp_path / "cheap", len(samples), CFG.shard_size)
    assert cheap.sketches is None and full.sketches.shape == (12, 16)
    assert list(cheap.scores) == [expert]
    np.testing.assert_allclose(cheap.scores[expert], full.scores[expert], rtol=1e-5)
    np.testing.assert_array_equal(cheap.embeddings, full.embeddings)
    # No gradient is left behind on any parameter.
    assert all(p.grad is None for p in loaded.model.parameters())
    # The selection made from either pass is the same.
    sel = SelectConfig(strategy=expert)
    a = strat.fn(SelectionInput(full.ids, np.zeros(12, bool), scores=full.scores), sel).indices
    b = strat.fn(SelectionInput(cheap.ids, np.zeros(12, bool), scores=cheap.scores), sel).indices
    np.testing.assert_array_equal(a, b)


def test_adapt_inf_still_scores_every_configured_expert_and_sketches():
    strat = get_strategy("adapt_inf")
    assert strat.sketches and strat.score_config(CFG) is CFG


def test_clip_without_weights_is_a_clear_error():
    from lifelong.run_config import load_run_config

    with pytest.raises(ValueError, match="CLIP needs user-supplied weights"):
        ScoreConfig(experts=["ppl", "clip"])
    # a single-expert clip strategy cuts the run's ScoreConfig down to clip: same error
    with pytest.raises(ValueError, match="score.clip.pretrained"):
        get_strategy("clip").score_config(ScoreConfig())
    with pytest.raises(ValueError, match="CLIP needs user-supplied weights"):
        load_run_config(None, ["score.experts=[ppl,clip]"])
    assert ScoreConfig(experts=["clip"], clip=ScoreConfig().clip.__class__(tiny=True)).experts == ["clip"]


def test_the_pass_records_the_experts_it_used(loaded, data, tmp_path, capsys):
    samples, load = data
    cut = get_strategy("el2n").score_config(CFG)
    score_samples(loaded, samples, load, cut, tmp_path / "s", progress=True, sketch=False)
    assert json.loads((tmp_path / "s" / "experts.json").read_text()) == {"experts": ["el2n"], "sketches": False}
    assert "scoring experts: el2n\n" in capsys.readouterr().out
    score_samples(loaded, samples, load, CFG, tmp_path / "f", progress=False)
    assert json.loads((tmp_path / "f" / "experts.json").read_text()) == {
        "experts": ["ppl", "el2n", "grand", "ig", "random"], "sketches": True}
