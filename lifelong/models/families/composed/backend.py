"""The composed family's backend: image -> K placeholder tokens + cached encoder features."""
from __future__ import annotations

import torch

from lifelong.data.sample import IMAGE_TOKEN
from lifelong.models.backends import ImageLoader
from lifelong.models.chat import ChatEncoder
from lifelong.models.config import ModelConfig
from lifelong.models.vision import BLANK_KEY


class ComposedBackend:
    """Composed model: image -> K placeholder tokens + cached encoder features."""

    def __init__(self, cfg: ModelConfig, device: torch.device, dtype: torch.dtype):
        from lifelong.models.composed import build_composed

        self.module, self.tokenizer, self.features = build_composed(cfg, device, dtype)
        self.image_token_id = self.module.image_token_id
        self.eos_id = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id
        self.projector_names = ["projector"]
        tok = self.tokenizer
        self.chat = ChatEncoder(
            tok,
            lambda msgs, gen: tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen),
            IMAGE_TOKEN,
            self.eos_id,
        )

    def decoder(self, base):
        return base.language_model.model

    def head(self, base):
        return base.language_model.get_output_embeddings()

    def prepare_images(self, keys: list[str], load: ImageLoader, blank: bool):
        k = self.features.grid**2
        return [IMAGE_TOKEN * k for _ in keys], [BLANK_KEY if blank else key for key in keys]

    def batch_images(self, payloads: list, load: ImageLoader) -> dict:
        return {"image_features": self.features.features([k for p in payloads for k in p], load)}

    def token_types(self, input_ids: torch.Tensor) -> dict:
        return {}

    def hidden(self, base, inputs: dict) -> torch.Tensor:
        return base(**inputs).last_hidden_state

    def generate(self, base, inputs: dict, **gen) -> torch.Tensor:
        x = base.input_embeddings(inputs["input_ids"], inputs.get("image_features"))
        # With inputs_embeds only, generate returns just the new tokens.
        return base.language_model.generate(inputs_embeds=x, attention_mask=inputs["attention_mask"], **gen)
