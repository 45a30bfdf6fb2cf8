"""Samples -> chat-template text -> token ids with a response mask.

Shared by both model families. The conversation is rendered with the model's
own chat template; which characters are response text is found by rendering
prefixes of the conversation (the text up to an assistant turn, with the
generation prompt, is a prefix of the text through that turn), and the whole
text is tokenised once with character offsets, so the ids are exactly what the
tokenizer makes of the full text and a token is a response token when it starts
inside an assistant turn. Each image's placeholder is replaced, in the text,
by the family's expansion of that image before tokenising, so the ids equal the
family processor's own tokenisation (text around images included).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
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
        # An empty turn (e.g. system_prompt "") keeps one empty text part: templates index content[0].
        out.append({"role": m["role"], "content": parts or [{"type": "text", "text": ""}]})
    return out


@dataclass
class Encoded:
    """One sample as tokens; ``labels[i]`` is True for a response token.

    ``images[k]`` = (start, end): the token range of the k-th image's
    expansion (its image tokens and whatever the family writes around them).
    """

    ids: list[int]
    labels: list[bool]
    images: list[tuple[int, int]] = field(default_factory=list)


class ChatEncoder:
    """Turns messages into token ids with a response mask, images expanded.

    ``render(messages, add_generation_prompt) -> str`` applies the model's chat
    template; the rendered text holds ``placeholder`` once per image (the text
    the family's processor replaces, e.g. ``<image>``, ``<|image_pad|>``,
    ``<start_of_image>``). Each placeholder is replaced by its expansion string
    (what the processor writes for that image) before the text is tokenised
    once, so the ids are exactly the processor's tokenisation of the same text.
    ``eos_id`` ends every response: when the template does not put it at the
    end of an assistant turn, it is appended (and trained on), so the model
    learns where to stop.
    """

    def __init__(self, tokenizer, render: Callable[[list[dict], bool], str], placeholder: str, eos_id: int):
        self.tokenizer = tokenizer
        self.render = render
        self.placeholder = placeholder
        self.eos_id = eos_id
        bos = tokenizer.bos_token_id
        probe = tokenizer("a").input_ids
        # Tokenizers that put BOS in front by themselves expect it there.
        self.bos_id = bos if bos is not None and probe and probe[0] == bos else None

    def _tokenize(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    def count_images(self, messages: list[dict], generation: bool) -> int:
        """Images in the text that ``encode`` (or, ``generation``, ``encode_prompt``) renders."""
        msgs = self._prompt(messages) if generation else messages
        return self.render(msgs, generation).count(self.placeholder)

    def _expand(self, text: str, expansions: list[str], sample_id: str):
        """(expanded text, char ranges of each image in it, map from a char position of ``text``)."""
        pieces = text.split(self.placeholder)
        if len(pieces) - 1 != len(expansions):
            raise ValueError(
                f"sample {sample_id}: {len(expansions)} image(s) but {len(pieces) - 1} image placeholder(s)"
                " after the chat template"
            )
        out, ranges, marks = [pieces[0]], [], []  # marks: (original position, shift after it)
        pos, orig, shift = len(pieces[0]), len(pieces[0]), 0
        for exp, piece in zip(expansions, pieces[1:]):
            ranges.append((pos, pos + len(exp)))
            shift += len(exp) - len(self.placeholder)
            orig += len(self.placeholder)
            marks.append((orig, shift))
            out += [exp, piece]
            pos += len(exp) + len(piece)
            orig += len(piece)

        def moved(p: int) -> int:
            return p + max([s for o, s in marks if o <= p], default=0)

        return "".join(out), ranges, moved

    def _tokens(self, text: str, expansions: list[str], spans: list[tuple[int, int]], sample_id: str) -> Encoded:
        text, ranges, moved = self._expand(text, expansions, sample_id)
        spans = [(moved(a), moved(b)) for a, b in spans]
        ids, offsets = self._tokenize(text)
        in_image = [next((k for k, (a, b) in enumerate(ranges) if a <= s < b), -1) for s, _ in offsets]
        labels = [k < 0 and any(a <= s < b for a, b in spans) for (s, _), k in zip(offsets, in_image)]
        # The end-of-turn token is trained on: append EOS after a response the
        # template does not close with it.
        out_ids: list[int] = []
        out_labels: list[bool] = []
        image_of: list[int] = []
        for j, (tok, lab) in enumerate(zip(ids, labels)):
            out_ids.append(tok)
            out_labels.append(lab)
            image_of.append(in_image[j])
            span_ends = lab and (j + 1 == len(ids) or not labels[j + 1])
            if span_ends and tok != self.eos_id:
                out_ids.append(self.eos_id)
                out_labels.append(True)
                image_of.append(-1)
        images = []
        for k in range(len(expansions)):
            where = [j for j, x in enumerate(image_of) if x == k]
            if not where or where[-1] - where[0] + 1 != len(where):
                raise ValueError(f"sample {sample_id}: image {k} does not tokenise into one run of tokens")
            images.append((where[0], where[-1] + 1))
        return self._finish(Encoded(out_ids, out_labels, images))

    def encode(self, messages: list[dict], expansions: list[str], sample_id: str) -> Encoded:
        """Training encoding: the whole conversation, response tokens marked, images expanded."""
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
        return self._tokens(text, expansions, spans, sample_id)

    @staticmethod
    def _prompt(messages: list[dict]) -> list[dict]:
        roles = [m["role"] for m in messages]
        cut = len(roles) - 1 - roles[::-1].index("assistant") if "assistant" in roles else len(roles)
        return messages[:cut]

    def encode_prompt(self, messages: list[dict], expansions: list[str], sample_id: str) -> Encoded:
        """Generation encoding: the turns before the last assistant turn + the generation prompt."""
        return self._tokens(self.render(self._prompt(messages), True), expansions, [], sample_id)

    def _finish(self, enc: Encoded) -> Encoded:
        if self.bos_id is not None and (not enc.ids or enc.ids[0] != self.bos_id):
            enc = Encoded([self.bos_id] + enc.ids, [False] + enc.labels, [(a + 1, b + 1) for a, b in enc.images])
        return enc


def truncate(enc: Encoded, max_length: int, side: str, sample_id: str) -> tuple[Encoded, list[int]]:
    """Cut ``enc`` to ``max_length`` tokens; returns it and the indices of the images that survived.

    ``side="right"`` keeps the start (training); ``"left"`` keeps the end
    (generation prompts). A cut never splits an image: it moves to the image's
    edge and the image is dropped. Cutting warns, naming the sample.
    """
    ids, labels, spans = enc.ids, enc.labels, enc.images
    kept = list(range(len(spans)))
    full = len(ids)
    if full <= max_length:
        return enc, kept
    if side == "right":
        cut = max_length
        for s, e in spans:
            if s < cut < e:
                cut = s
        kept = [i for i, (s, e) in enumerate(spans) if e <= cut]
        out = Encoded(ids[:cut], labels[:cut], [spans[i] for i in kept])
    else:
        start = len(ids) - max_length
        for s, e in spans:
            if s < start < e:
                start = e
        kept = [i for i, (s, e) in enumerate(spans) if s >= start]
        out = Encoded(ids[start:], labels[start:], [(spans[i][0] - start, spans[i][1] - start) for i in kept])
    lost = len(spans) - len(kept)
    what = f", dropping {lost} image(s)" if lost else ""
    msg = f"sample {sample_id}: {full} tokens cut to {len(out.ids)} (max_length {max_length}){what}"
    if side == "right" and not any(out.labels):
        msg += "; no response token is left, so it adds nothing to the loss"
    warnings.warn(msg, stacklevel=3)
    return out, kept
