"""The HF family's backend: the processor expands each sample's images, the batch pads them together."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lifelong.data.sample import IMAGE_TOKEN
from lifelong.models.backends import ImageLoader
from lifelong.models.chat import ChatEncoder, structured_messages
from lifelong.models.config import ModelConfig
from lifelong.models.vision import blank_image

# Per-token tensors processors return beside input_ids; rebuilt for the padded batch.
TOKEN_TYPE_KEYS = ("token_type_ids", "mm_token_type_ids")
# Joins placeholders when a sample's images are expanded by the processor in one
# call; it must survive tokenise -> decode unchanged and never occur in an expansion.
SEPARATOR = "\u00a7\u00a7"


def pad_cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate along dim 0, zero-padding every other dim to the largest size.

    Zero padding is what the families expect of absent crops/tiles: Idefics3
    drops all-zero crops (and its ``pixel_attention_mask`` marks them 0),
    LLaVA-NeXT/OneVision keep only as many tiles as ``image_sizes`` implies.
    """
    if all(t.shape[1:] == tensors[0].shape[1:] for t in tensors):
        return torch.cat(tensors)
    size = [max(t.shape[d] for t in tensors) for d in range(1, tensors[0].dim())]
    out = []
    for t in tensors:
        pad = []
        for d in reversed(range(1, t.dim())):
            pad += [0, size[d - 1] - t.shape[d]]
        out.append(F.pad(t, pad))
    return torch.cat(out)


class HFBackend:
    """HF model: the processor expands each sample's images, the batch pads them together."""

    def __init__(self, cfg: ModelConfig, device: torch.device, dtype: torch.dtype):
        from lifelong.models.families.hf.build import build_hf, projector_modules

        self.module, self.processor = build_hf(cfg, device, dtype)
        self.tokenizer = self.processor.tokenizer
        self.placeholder = getattr(self.processor, "image_token", IMAGE_TOKEN)
        config = self.module.config
        image_id = getattr(config, "image_token_id", None)
        self.image_token_id = image_id if image_id is not None else config.image_token_index
        self.eos_id = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_id
        self.projector_names = projector_modules(self.module, cfg)
        probe = self.processor(text=["a"], return_tensors="pt")
        self.token_type_keys = [k for k in TOKEN_TYPE_KEYS if k in probe]
        text_cfg = config.get_text_config()
        self.softcap = getattr(text_cfg, "final_logit_softcapping", None)
        render_with = self.processor if getattr(self.processor, "chat_template", None) else self.tokenizer

        def render(msgs: list[dict], gen: bool) -> str:
            return render_with.apply_chat_template(structured_messages(msgs), tokenize=False, add_generation_prompt=gen)

        self.chat = ChatEncoder(self.tokenizer, render, self.placeholder, self.eos_id)

    def decoder(self, base):
        return base.get_decoder()

    def head(self, base):
        lm_head = base.get_output_embeddings()
        if not self.softcap:
            return lm_head
        cap = self.softcap
        return lambda h: torch.tanh(lm_head(h) / cap) * cap  # Gemma's final logit soft-capping

    def prepare_images(self, keys: list[str], load: ImageLoader, blank: bool):
        """The processor expands the sample's images in one call; its ids, decoded, give each expansion."""
        if not keys:
            return [], None
        images = []
        for key in keys:
            image = load(key).convert("RGB")
            images.append(blank_image(image.size) if blank else image)
        text = SEPARATOR.join([self.placeholder] * len(images))
        out = self.processor(text=[text], images=[images], return_tensors="pt", add_special_tokens=False)
        decoded = self.tokenizer.decode(out["input_ids"][0].tolist(), skip_special_tokens=False,
                                        clean_up_tokenization_spaces=False)
        expansions = decoded.split(SEPARATOR)
        if len(expansions) != len(images):
            raise RuntimeError(f"the processor's image expansion does not round-trip through the tokenizer: {decoded!r}")
        drop = {"input_ids", "attention_mask", *TOKEN_TYPE_KEYS}
        return expansions, {k: v for k, v in out.items() if k not in drop and isinstance(v, torch.Tensor)}

    def batch_images(self, payloads: list, load: ImageLoader) -> dict:
        payloads = [p for p in payloads if p]
        if not payloads:
            return {}
        return {k: pad_cat([p[k] for p in payloads]) for k in payloads[0]}

    def token_types(self, input_ids: torch.Tensor) -> dict:
        """1 on image tokens, 0 elsewhere, (B, T) long, for each key the processor returns."""
        types = (input_ids == self.image_token_id).long()
        return {k: types for k in self.token_type_keys}

    def hidden(self, base, inputs: dict) -> torch.Tensor:
        return base.model(**inputs).last_hidden_state

    def generate(self, base, inputs: dict, **gen) -> torch.Tensor:
        out = base.generate(**inputs, **gen)
        return out[:, inputs["input_ids"].shape[1] :]
