"""The model API, run on tiny random models of both families."""
from __future__ import annotations

import dataclasses
import json
import warnings

import pytest
import torch
import torch.nn.functional as F

from lifelong.models.chat import IGNORE

END = "<|im_end|>"


def test_forward_shapes_and_losses_agree(family, make_model, samples, images):
    m = make_model(family)
    batch = m.collate(samples, images.__getitem__)
    B, T = batch["input_ids"].shape
    assert B == len(samples) and batch["labels"].shape == (B, T) and batch["attention_mask"].shape == (B, T)
    logits = m.forward(batch)
    assert logits.shape == (B, T, len(m.tokenizer)) or logits.shape[:2] == (B, T)
    loss = m.per_sample_loss(batch)
    assert loss.shape == (B,) and torch.isfinite(loss).all()
    # forward's logits are aligned with labels: the same mean NLL comes out of them.
    for b in range(B):
        sel = batch["labels"][b] != IGNORE
        expect = F.cross_entropy(logits[b][sel], batch["labels"][b][sel])
        assert torch.allclose(loss[b], expect, atol=1e-5)
    lp = m.token_logprobs(batch)
    assert lp.shape == (B, T)
    mean_lp = lp.sum(1) / (batch["labels"] != IGNORE).sum(1)
    assert torch.allclose(-mean_lp, loss, atol=1e-5)
    emb = m.embed(batch)
    assert emb.shape[0] == B and emb.ndim == 2 and torch.isfinite(emb).all()


def test_label_mask_token_by_token(family, make_model, samples, images):
    m = make_model(family)
    tok = m.tokenizer
    batch = m.collate(samples, images.__getitem__)
    prompt_ids = tok("<|im_start|>assistant\n", add_special_tokens=False).input_ids
    for b, s in enumerate(samples):
        ids = batch["input_ids"][b].tolist()
        labels = batch["labels"][b].tolist()
        mask = batch["attention_mask"][b].tolist()
        answers = [t["content"] for t in s.conversation if t["role"] == "assistant"]
        # Unmasked tokens, decoded: the assistant texts, each with its end-of-turn token.
        kept = [x for x in labels if x != IGNORE]
        assert tok.decode(kept) == "".join(a + END for a in answers)
        # Token by token: each run of unmasked tokens is exactly the tokens of
        # "<answer><|im_end|>", right after the assistant header; everything
        # else (system, user, headers, image tokens, padding) is -100.
        runs, t = [], 0
        while t < len(labels):
            if labels[t] == IGNORE:
                t += 1
                continue
            start = t
            while t < len(labels) and labels[t] != IGNORE:
                assert labels[t] == ids[t] and mask[t] == 1
                t += 1
            runs.append((start, t))
        assert len(runs) == len(answers)
        for (a, e), answer in zip(runs, answers):
            assert ids[a:e] == tok(answer + END, add_special_tokens=False).input_ids
            assert ids[a - len(prompt_ids) : a] == prompt_ids
        assert all(labels[t] == IGNORE for t in range(len(ids)) if mask[t] == 0)
        assert all(labels[t] == IGNORE for t in range(len(ids)) if ids[t] == m.backend.image_token_id)


def test_images_become_image_tokens(family, make_model, samples, images):
    m = make_model(family)
    batch = m.collate(samples, images.__getitem__)
    n_img = (batch["input_ids"] == m.backend.image_token_id).sum(1).tolist()
    assert n_img[2] == 0  # text-only sample: no image tokens
    assert n_img[0] == n_img[1] > 0
    if family == "composed":
        assert batch["image_features"].shape[:2] == (2, m.cfg.composed.image_tokens)
    else:
        assert batch["pixel_values"].shape[0] == 2
    text_only = m.collate(samples[2:], images.__getitem__)
    assert "pixel_values" not in text_only
    if family == "composed":
        assert text_only["image_features"].shape[0] == 0


def test_lora_training_lowers_loss(family, make_model, samples, images):
    m = make_model(family)
    batch = m.collate(samples, images.__getitem__)
    params = m.trainable_parameters()
    assert params and all("lora_" in n or "modules_to_save" in n for n in params)
    assert any("modules_to_save" in n for n in params), "the projector must train"
    frozen_before = {n: p.detach().clone() for n, p in m.model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW(params.values(), lr=1e-2)
    m.model.train()
    with torch.no_grad():
        before = m.per_sample_loss(batch).mean().item()
    for _ in range(5):
        loss = m.per_sample_loss(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = m.per_sample_loss(batch).mean().item()
    assert after < before - 0.5
    for n, p in m.model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen_before[n]), f"frozen weight {n} changed"


def test_generate_batched_equals_one_by_one(family, make_model, samples, images):
    m = make_model(family)
    together = m.generate(samples, images.__getitem__, max_new_tokens=6, batch_size=3)
    alone = [m.generate([s], images.__getitem__, max_new_tokens=6, batch_size=1)[0] for s in samples]
    assert len(together) == len(samples) and all(isinstance(a, str) for a in together)
    assert any(together)
    assert together == alone


def _train_a_little(m, batch, steps=2):
    opt = torch.optim.AdamW(m.trainable_parameters().values(), lr=1e-2)
    for _ in range(steps):
        loss = m.per_sample_loss(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_adapter_round_trip_identical_logits(family, make_model, samples, images, tmp_path):
    m = make_model(family)
    batch = m.collate(samples, images.__getitem__)
    _train_a_little(m, batch)
    with torch.no_grad():
        expect = m.forward(batch)
    out = m.save_adapter(tmp_path / "adapter")
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    from safetensors.torch import load_file

    keys = list(load_file(out / "adapter_model.safetensors"))
    assert any("lora_A" in k for k in keys) and any(m.backend.projector_names[0] in k for k in keys)
    assert json.loads((out / "lifelong_model.json").read_text())["family"] == family

    fresh = make_model(family)  # same base weights (same seed), untrained adapter
    with torch.no_grad():
        assert not torch.allclose(fresh.forward(batch), expect)
    fresh.load_adapter(out)
    with torch.no_grad():
        got = fresh.forward(batch)
    assert torch.equal(got, expect)


def test_load_adapter_refuses_other_shape(make_model, tmp_path):
    m = make_model("composed")
    m.save_adapter(tmp_path / "a")
    other = make_model("composed", lora=dataclasses.replace(m.cfg.lora, rank=2))
    with pytest.raises(ValueError, match="r is"):
        other.load_adapter(tmp_path / "a")


def test_blank_images_change_image_samples_only(family, make_model, samples, images):
    m = make_model(family)
    real = m.collate(samples, images.__getitem__)
    blank = m.collate(samples, images.__getitem__, blank_images=True)
    for k in ("input_ids", "attention_mask", "labels"):
        assert torch.equal(real[k], blank[k])
    with torch.no_grad():
        a, b = m.forward(real), m.forward(blank)
        la, lb = m.per_sample_loss(real), m.per_sample_loss(blank)
    assert not torch.allclose(a[0], b[0]) and not torch.allclose(a[1], b[1])
    assert torch.allclose(a[2], b[2], atol=1e-6) and torch.allclose(la[2], lb[2], atol=1e-6)
    assert la[0] != lb[0]


def test_truncation_warns_and_never_splits_an_image(family, make_model, samples, images):
    m = make_model(family)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is cut at max_length 96
        full = m.collate(samples[1:2], images.__getitem__)
    ids = full["input_ids"][0].tolist()
    first_image = ids.index(m.backend.image_token_id)
    # A limit that falls inside the image: the cut moves to the image's start.
    m.cfg.max_length = first_image + 2
    with pytest.warns(UserWarning, match="sample multi-2: .* dropping 1 image"):
        batch = m.collate(samples[1:2], images.__getitem__)
    assert batch["input_ids"][0].tolist() == ids[:first_image]
    assert batch["labels"][0].tolist() == full["labels"][0].tolist()[:first_image]
    with torch.no_grad():
        assert torch.isfinite(m.per_sample_loss(batch)).all()


def test_lora_only_on_chosen_decoder_layers(family, make_model):
    m = make_model(family, lora=dataclasses.replace(_lora(), layers=[1]))
    mods = m.lora_modules()
    assert mods and all(f"{m.layers_prefix}.1." in n for n in mods)
    assert not any("vision" in n for n in mods)
    assert m.lora_modules([0]) == {}
    params = m.lora_parameters([1])
    assert len(params) == 2 * len(mods)
    assert all(p.requires_grad for p in params.values())
    with pytest.raises(ValueError, match="out of range"):
        make_model(family, lora=dataclasses.replace(_lora(), layers=[7]))


def _lora():
    from lifelong.models.config import LoraSettings

    return LoraSettings(rank=4, alpha=8.0, dropout=0.0)


def test_same_seed_same_model(make_model, samples, images):
    a, b = make_model("composed"), make_model("composed")
    batch = a.collate(samples, images.__getitem__)
    with torch.no_grad():
        assert torch.equal(a.forward(batch), b.forward(batch))
