"""Every tiny HF family through the model API, against the family's own processor and model.

Samples: text-only, one image, two images of different sizes (so crops, tiles
and grids differ across the batch), in one mixed batch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import warnings

import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from lifelong.data.sample import Sample
from lifelong.models.chat import IGNORE, sample_messages
from lifelong.models.families.hf.tiny import TINY_BUILDERS

FAMILIES = [f for f in TINY_BUILDERS if f != "llava"]  # llava runs through test_models_api.py


def make_pics() -> dict:
    """Content hash -> image: 48x32 and 32x70, so crops, tiles and grids differ."""
    out = {}
    for size, color in [((48, 32), (220, 30, 30)), ((32, 70), (30, 30, 220))]:
        im = Image.new("RGB", size, (250, 250, 250))
        ImageDraw.Draw(im).rectangle((2, 2, size[0] // 2, size[1] // 2), fill=color)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        out[hashlib.sha256(buf.getvalue()).hexdigest()] = im
    return out


def make_mixed(pics: dict) -> list[Sample]:
    """Text-only, one image, two images of different sizes."""
    a, b = list(pics)
    turn = {"role": "assistant", "content": "A red box."}
    return [
        Sample(id="text", dataset="d", task="t", split="train",
               conversation=[{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]),
        Sample(id="one", dataset="d", task="t", split="train",
               conversation=[{"role": "user", "content": "<image>\nWhat is shown?"}, turn], images=[a]),
        Sample(id="two", dataset="d", task="t", split="train",
               conversation=[{"role": "user", "content": "Compare <image> with <image> please."},
                             {"role": "assistant", "content": "The second is blue."}], images=[a, b]),
    ]


@pytest.fixture(scope="module")
def pics():
    return make_pics()


@pytest.fixture(scope="module")
def mixed(pics):
    return make_mixed(pics)


def make(family, model_cache):
    from lifelong.models import load_model
    from lifelong.models.config import tiny_model_config

    cfg = tiny_model_config(model_cache, "hf", max_length=512)
    cfg.hf = dataclasses.replace(cfg.hf, tiny=family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_model(cfg)


def _perturb_lora(m, seed=0):
    """Random LoRA A and B, so that every LoRA weight has a non-zero gradient and effect."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.lora_parameters().values():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def _processor_inputs(m, sample, pics):
    """The family processor's own encoding of the sample's rendered conversation."""
    text = m.backend.chat.render(sample_messages(sample, m.cfg.system_prompt), False)
    images = [[pics[k] for k in sample.images]] if sample.images else None
    return m.backend.processor(text=[text], images=images, return_tensors="pt", add_special_tokens=False)


@pytest.fixture(params=FAMILIES)
def model(request, model_cache):
    return make(request.param, model_cache)


def test_ids_equal_processor_and_labels_are_the_answers(model, mixed, pics):
    m = model
    batch = m.collate(mixed, pics.__getitem__)
    for b, s in enumerate(mixed):
        ref = _processor_inputs(m, s, pics)["input_ids"][0].tolist()
        n = int(batch["attention_mask"][b].sum())
        assert batch["input_ids"][b, :n].tolist() == ref
        labels = [x for x in batch["labels"][b].tolist() if x != IGNORE]
        answers = [t["content"] for t in s.conversation if t["role"] == "assistant"]
        assert m.tokenizer.decode(labels).strip() == "".join(a + m.tokenizer.eos_token for a in answers)
    assert int((batch["input_ids"][0] == m.backend.image_token_id).sum()) == 0
    per_image = (batch["input_ids"] == m.backend.image_token_id).sum(1).tolist()
    assert per_image[1] > 0 and per_image[2] > per_image[1] * 0 and per_image[2] > 0


def test_loss_equals_the_hf_models_own_forward(model, mixed, pics):
    """Batched mixed loss == the HF model run on the processor's output of each sample alone."""
    m = model
    _perturb_lora(m)
    batch = m.collate(mixed, pics.__getitem__)
    with torch.no_grad():
        got = m.per_sample_loss(batch)
        for b, s in enumerate(mixed):
            inputs = dict(_processor_inputs(m, s, pics))
            logits = m.model(**inputs).logits[0].float()  # (T, V), the HF forward (LoRA included)
            n = int(batch["attention_mask"][b].sum())
            labels = batch["labels"][b, :n]
            expect = F.cross_entropy(logits[:-1], labels[1:], ignore_index=IGNORE)
            assert torch.allclose(got[b], expect, rtol=1e-4, atol=1e-5), (s.id, got[b].item(), expect.item())


def test_batched_sketch_grads_equal_per_sample_autograd(model, mixed, pics):
    from lifelong.selection.sketch import PerSampleGrads, lora_linears, only_these_trainable

    m = model
    _perturb_lora(m)
    last = m.lora_layers[-1]
    grads = PerSampleGrads(lora_linears(m.lora_modules([last])))
    params = [mod.weight for mod in grads.modules.values()]
    try:
        with only_these_trainable(m.model, params):
            m.per_sample_loss(m.collate(mixed, pics.__getitem__)).sum().backward()
            flat = grads.flat()  # (B, D)
            for b, s in enumerate(mixed):
                loss = m.per_sample_loss(m.collate([s], pics.__getitem__))[0]
                ref = torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])
                grads.inputs.clear()
                grads.grads.clear()
                assert ref.norm() > 0
                assert (flat[b] - ref).norm() / ref.norm() < 1e-4, s.id
    finally:
        grads.remove()


def test_scoring_pass_with_ig(model, mixed, pics):
    from lifelong.selection.score import ScoreConfig, Scorer

    m = model
    scorer = Scorer(m, ScoreConfig(experts=["ppl", "ig", "grand"]), pics.__getitem__)
    try:
        sketch, embed, scores = scorer.score_batch(mixed)
    finally:
        scorer.close()
    assert sketch.shape[0] == 3 and torch.isfinite(sketch.float()).all()
    assert scores["ig"][0] == 1.0  # text-only
    assert all(torch.isfinite(v).all() and (v > 0).all() for v in scores.values())
    # The blank pass really ran on the image samples: a blanked image changes their NLL.
    blank = m.collate(mixed[1:], pics.__getitem__, blank_images=True)
    with torch.no_grad():
        assert not torch.allclose(m.per_sample_loss(blank), m.per_sample_loss(m.collate(mixed[1:], pics.__getitem__)))


def test_lora_step_lowers_loss_and_generation_is_batch_invariant(model, mixed, pics):
    m = model
    batch = m.collate(mixed, pics.__getitem__)
    opt = torch.optim.AdamW(m.trainable_parameters().values(), lr=1e-2)
    with torch.no_grad():
        before = m.per_sample_loss(batch).mean().item()
    for _ in range(3):
        loss = m.per_sample_loss(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert m.per_sample_loss(batch).mean().item() < before
    together = m.generate(mixed, pics.__getitem__, max_new_tokens=4, batch_size=3)
    alone = [m.generate([s], pics.__getitem__, max_new_tokens=4, batch_size=1)[0] for s in mixed]
    assert together == alone and all(isinstance(a, str) for a in together)


def test_export_reloads_with_plain_transformers_and_peft(model, mixed, pics, tmp_path, model_cache):
    """The adapter, applied by plain peft to the base saved by plain transformers, gives the same logits."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from lifelong.models.families.hf.tiny import build_tiny

    m = model
    batch = m.collate(mixed, pics.__getitem__)
    opt = torch.optim.AdamW(m.trainable_parameters().values(), lr=1e-2)
    loss = m.per_sample_loss(batch).mean()
    loss.backward()
    opt.step()
    m.save_adapter(tmp_path / "adapter")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(m.cfg.seed)
        base, _ = build_tiny(m.cfg, torch.float32)
    base.save_pretrained(tmp_path / "base")
    plain = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(tmp_path / "base"),
                                      tmp_path / "adapter").eval()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        expect = m.model(**inputs).logits
        got = plain(**inputs).logits
    assert torch.allclose(got, expect, atol=1e-5)
