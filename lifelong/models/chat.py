"""Samples -> chat-template text -> token ids with a response mask.

Shared by both model families. The conversation is rendered with the model's
own chat template; which characters are response text is found by rendering
prefixes of the conversation (the text up to an assistant turn, with the
generation prompt, is a prefix of the text through that turn), and the whole
text is tokenised once with character offsets, so the ids are exactly what the
tokenizer makes of the full text and a token is a response token when it starts
inside an assistant turn. Each image is one placeholder token here; the family
expands it into its image tokens afterwards (``expand_images``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

from lifelong.data.sample import IMAGE_TOKEN, Sample

IGNORE = -100  # label of every token that is not a response token


def sample_messages(sample: Sample, system_prompt: str | None) -> list[dict]:
    """The sample's turns as chat messages, ``<image>`` tokens in place.

    A sample with images but no ``<image>`` token gets them in front of its
    first user turn (LLaVA's convention). ``system_prompt`` (when not None) is
    added as the system turn of a conversation that has none.
    """
    turns = [{"role": t["role"], "content": t["content"]} for t in sample.conversation]
    n_tokens = sum(t["content"].count(IMAGE_TOKEN) for t in turns)
    if sample.images and n_tokens == 0:
        first = next(i for i, t in enumerate(turns) if t["role"] == "user")
        turns[first]["content"] = IMAGE_TOKEN * len(sample.images) + "\n" + turns[first]["content"]
    elif n_tokens != len(sample.images):
        raise ValueError(f"sample {sample.id}: {len(sample.images)} image(s) but {n_tokens} {IMAGE_TOKEN} token(s)")
    if system_prompt is not None and turns and turns[0]["role"] != "system":
        turns.insert(0, {"role": "system", "content": system_prompt})
    return turns


def structured_messages(messages: list[dict], image_text: str = IMAGE_TOKEN) -> list[dict]:
    """String contents -> HF multimodal content lists (``{"type": "image"}`` / ``{"type": "text"}``)."""
    out = []
    for m in messages:
        parts = []
        for i, piece in enumerate(m["content"].split(image_text)):
            if i:
                parts.append({"type": "image"})
            if piece:
                parts.append({"type": "text", "text": piece})
        out.append({"role": m["role"], "content": parts})
    return out


@dataclass
class Encoded:
    """One sample as tokens; ``labels[i]`` is True for a response token."""

    ids: list[int]
    labels: list[bool]


class ChatEncoder:
    """Turns messages into token ids with a response mask.

    ``render(messages, add_generation_prompt) -> str`` applies the model's chat
    template; the rendered text must contain one ``image_token_id`` token per
    image. ``eos_id`` ends every response: when the template does not put it at
    the end of an assistant turn, it is appended (and trained on), so the model
    learns where to stop.
    """

    def __init__(self, tokenizer, render: Callable[[list[dict], bool], str], image_token_id: int, eos_id: int):
        self.tokenizer = tokenizer
        self.render = render
        self.image_token_id = image_token_id
        self.eos_id = eos_id
        bos = tokenizer.bos_token_id
        probe = tokenizer("a").input_ids
        # Tokenizers that put BOS in front by themselves expect it there.
        self.bos_id = bos if bos is not None and probe and probe[0] == bos else None

    def _tokenize(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    def encode(self, messages: list[dict], n_images: int, sample_id: str) -> Encoded:
        """Training encoding: the whole conversation, response tokens marked."""
        text = self.render(messages, False)
        spans = []
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            if i == 0:
                raise ValueError(f"sample {sample_id}: conversation starts with an assistant turn")
            before = self.render(messages[:i], True)
            through = self.render(messages[: i + 1], False)
            if not (through.startswith(before) and text.startswith(through)):
                raise ValueError(
                    f"sample {sample_id}: the chat template does not render conversation prefixes as text prefixes,"
                    " so response tokens cannot be located"
                )
            # The turn's text without trailing whitespace: content plus the
            # end-of-turn token where the template writes one.
            spans.append((len(before), len(before) + len(through[len(before) :].rstrip())))
        ids, offsets = self._tokenize(text)
        labels = [any(a <= s < b for a, b in spans) for s, _ in offsets]
        # The end-of-turn token is trained on: append EOS after a response the
        # template does not close with it.
        out_ids: list[int] = []
        out_labels: list[bool] = []
        for j, (tok, lab) in enumerate(zip(ids, labels)):
            out_ids.append(tok)
            out_labels.append(lab)
            span_ends = lab and (j + 1 == len(ids) or not labels[j + 1])
            if span_ends and tok != self.eos_id:
                out_ids.append(self.eos_id)
                out_labels.append(True)
        return self._finish(Encoded(out_ids, out_labels), n_images, sample_id)

    def encode_prompt(self, messages: list[dict], sample_id: str) -> Encoded:
        """Generation encoding: the turns before the last assistant turn + the generation prompt."""
        roles = [m["role"] for m in messages]
        cut = len(roles) - 1 - roles[::-1].index("assistant") if "assistant" in roles else len(roles)
        prompt = messages[:cut]
        kept_images = sum(m["content"].count(IMAGE_TOKEN) for m in prompt)
        ids, _ = self._tokenize(self.render(prompt, True))
        return self._finish(Encoded(ids, [False] * len(ids)), kept_images, sample_id)

    def _finish(self, enc: Encoded, n_images: int, sample_id: str) -> Encoded:
        if self.bos_id is not None and (not enc.ids or enc.ids[0] != self.bos_id):
            enc = Encoded([self.bos_id] + enc.ids, [False] + enc.labels)
        found = enc.ids.count(self.image_token_id)
        if found != n_images:
            raise ValueError(
                f"sample {sample_id}: {n_images} image(s) but {found} image token(s) after the chat template"
            )
        return enc


def expand_images(
    enc: Encoded,
    image_token_id: int,
    expansions: list[list[int]],
    max_length: int,
    side: str,
    sample_id: str,
) -> tuple[Encoded, list[int]]:
    """Replace the i-th image placeholder by ``expansions[i]``, then cut to ``max_length``.

    ``side="right"`` keeps the start (training); ``"left"`` keeps the end
    (generation prompts). A cut never splits an image: it moves to the image's
    edge and the image is dropped. Returns the encoding and the indices of the
    images that survived, in order. Cutting warns, naming the sample.
    """
    ids: list[int] = []
    labels: list[bool] = []
    spans: list[tuple[int, int]] = []
    k = 0
    for tok, lab in zip(enc.ids, enc.labels):
        if tok == image_token_id:
            spans.append((len(ids), len(ids) + len(expansions[k])))
            ids.extend(expansions[k])
            labels.extend([False] * len(expansions[k]))
            k += 1
        else:
            ids.append(tok)
            labels.append(lab)
    kept = list(range(len(spans)))
    full = len(ids)
    if full > max_length:
        if side == "right":
            cut = max_length
            for s, e in spans:
                if s < cut < e:
                    cut = s
            kept = [i for i, (s, e) in enumerate(spans) if e <= cut]
            ids, labels = ids[:cut], labels[:cut]
        else:
            start = len(ids) - max_length
            for s, e in spans:
                if s < start < e:
                    start = e
            kept = [i for i, (s, e) in enumerate(spans) if s >= start]
            ids, labels = ids[start:], labels[start:]
        lost = len(spans) - len(kept)
        what = f", dropping {lost} image(s)" if lost else ""
        msg = f"sample {sample_id}: {full} tokens cut to {len(ids)} (max_length {max_length}){what}"
        if side == "right" and not any(labels):
            msg += "; no response token is left, so it adds nothing to the loss"
        warnings.warn(msg, stacklevel=3)
    return Encoded(ids, labels), kept
