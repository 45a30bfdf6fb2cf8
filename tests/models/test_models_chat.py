"""Chat encoding with a template unlike ChatML: LLaVA-1.5's "USER: ... ASSISTANT:" style."""
from __future__ import annotations

import pytest

from lifelong.data.sample import Sample
from lifelong.models.chat import ChatEncoder, sample_messages, structured_messages, truncate

# LLaVA-1.5-hf's layout: images first, then text; assistant turns end with a
# space and no end-of-turn token; the generation prompt is "ASSISTANT:".
LLAVA_STYLE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for c in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for c in message['content'] | selectattr('type', 'equalto', 'text') %}{{ c['text'] + ' ' }}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer(model_cache):
    from transformers import AutoTokenizer

    from lifelong.models.weights import smollm2_tokenizer_dir

    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir(model_cache), local_files_only=True)
    tok.add_tokens(["<image>"], special_tokens=True)
    return tok


def _encoder(tok):
    def render(msgs, gen):
        return tok.apply_chat_template(
            structured_messages(msgs), chat_template=LLAVA_STYLE, tokenize=False, add_generation_prompt=gen
        )

    return ChatEncoder(tok, render, "<image>", tok.eos_token_id)


def test_llava_style_template_labels_and_appended_eos(tokenizer):
    enc = _encoder(tokenizer)
    s = Sample(
        id="s",
        dataset="d",
        task="t",
        split="train",
        conversation=[
            {"role": "user", "content": "What is shown?"},
            {"role": "assistant", "content": "A red box."},
            {"role": "user", "content": "And the size?"},
            {"role": "assistant", "content": "Small."},
        ],
        images=["h"],
    )
    msgs = sample_messages(s, None)
    assert msgs[0]["content"] == "<image>\nWhat is shown?"  # LLaVA convention: image in front
    e = enc.encode(msgs, ["<image><image>"], s.id)
    labelled = [t for t, lab in zip(e.ids, e.labels) if lab]
    # No end-of-turn token in this template: EOS is appended after each answer and trained on.
    eos = tokenizer.eos_token
    assert tokenizer.decode(labelled) == f" A red box.{eos} Small.{eos}"
    img = tokenizer.convert_tokens_to_ids("<image>")
    assert e.ids.count(img) == 2 and e.ids[e.images[0][0] : e.images[0][1]] == [img, img]
    assert not any(e.labels[e.images[0][0] : e.images[0][1]])
    p = enc.encode_prompt(msgs, ["<image><image>"], s.id)
    assert tokenizer.decode(p.ids).endswith("USER: And the size? ASSISTANT:")
    assert not any(p.labels)


def test_image_count_mismatch_is_an_error():
    s = Sample(
        id="bad",
        dataset="d",
        task="t",
        split="train",
        conversation=[{"role": "user", "content": "<image> <image>"}, {"role": "assistant", "content": "x"}],
        images=["h"],
    )
    with pytest.raises(ValueError, match="sample bad: 1 image"):
        sample_messages(s, None)


def test_system_prompt_added_only_when_missing():
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    s = Sample(id="a", dataset="d", task="t", split="train", conversation=conv)
    assert sample_messages(s, "")[0] == {"role": "system", "content": ""}
    assert sample_messages(s, None)[0]["role"] == "user"
    system = [{"role": "system", "content": "S"}]
    with_sys = Sample(id="b", dataset="d", task="t", split="train", conversation=system + conv)
    assert sample_messages(with_sys, "other")[0]["content"] == "S"


def test_truncate_never_splits_an_image():
    from lifelong.models.chat import Encoded

    enc = Encoded([1, 7, 7, 7, 2, 3, 8, 8, 8, 4], [False] * 9 + [True], [(1, 4), (6, 9)])
    with pytest.warns(UserWarning, match="dropping 1 image"):
        out, kept = truncate(enc, max_length=6, side="left", sample_id="g")
    # 10 tokens; the last 6 start inside the first image, so the cut moves past it.
    assert out.ids == [2, 3, 8, 8, 8, 4] and kept == [1] and out.images == [(2, 5)]
    with pytest.warns(UserWarning, match="dropping 1 image"):
        out, kept = truncate(enc, max_length=8, side="right", sample_id="g")
    assert out.ids == [1, 7, 7, 7, 2, 3] and kept == [0] and out.images == [(1, 4)]
    out, kept = truncate(enc, max_length=10, side="right", sample_id="g")
    assert out is enc and kept == [0, 1]
