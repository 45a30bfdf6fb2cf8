"""The composed model: frozen vision encoder -> MLP projector -> causal LM (LLaVA's shape).

The encoder lives outside the trainable module (in ``VisionFeatures``, with its
cache); ``ComposedVLM`` receives pooled encoder features and owns only what
trains or is adapted: the projector and the language model.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from lifelong.data.sample import IMAGE_TOKEN
from lifelong.models.config import ComposedConfig, ModelConfig
from lifelong.models.vision import VisionFeatures, build_encoder
from lifelong.models.weights import smollm2_dir, smollm2_tokenizer_dir

# The stage-1 aligned projector shipped with the package (reproduced by lifelong/models/align.py).
STAGE1_PROJECTOR = Path(__file__).resolve().parent / "assets" / "projector_stage1.safetensors"
# Its width and output: SmolLM2-135M's hidden size.
STAGE1_WIDTH = 576

# A random Llama for tests: 2 layers of width 64 with SmolLM2's vocabulary; the
# output head is untied so that greedy generation does not just echo its input.
TINY_LM = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    tie_word_embeddings=False,
)


def make_projector(vision_dim: int, lm_hidden: int, projector_hidden: int = 0) -> nn.Sequential:
    """LLaVA-1.5's projector: Linear(vision_dim, width) -> GELU -> Linear(width, lm_hidden).

    ``width`` is ``projector_hidden``, or ``lm_hidden`` when that is 0. Draws its
    initial weights from torch's global generator (callers fork and seed it).
    """
    width = projector_hidden or lm_hidden
    return nn.Sequential(nn.Linear(vision_dim, width), nn.GELU(), nn.Linear(width, lm_hidden))


def has_stage1(c: ComposedConfig) -> bool:
    """Whether the shipped stage-1 projector fits this encoder, LM and projector width."""
    return (c.vision == "efficientnet_lite0" and c.vision_pretrained and c.lm == "smollm2-135m"
            and c.projector_hidden in (0, STAGE1_WIDTH))


class ComposedVLM(nn.Module):
    """Projector + causal LM. Image features enter as embeddings at image-token positions.

    ``image_token_id`` lies outside the LM's vocabulary: those positions are
    looked up as token 0 and then overwritten with projected image features.
    """

    def __init__(self, language_model: nn.Module, vision_dim: int, image_token_id: int, projector_hidden: int = 0):
        super().__init__()
        hidden = language_model.config.hidden_size
        self.language_model = language_model
        self.projector = make_projector(vision_dim, hidden, projector_hidden)
        self.image_token_id = image_token_id

    def input_embeddings(self, input_ids: torch.Tensor, image_features: torch.Tensor | None) -> torch.Tensor:
        """(B, T) ids + (N, K, C) features of the N images in order -> (B, T, H) embeddings."""
        image_mask = input_ids == self.image_token_id  # (B, T)
        embed = self.language_model.get_input_embeddings()
        x = embed(input_ids.masked_fill(image_mask, 0))
        n = int(image_mask.sum())
        if n:
            proj = self.projector(image_features.to(x.dtype)).reshape(-1, x.shape[-1])  # (N*K, H)
            if proj.shape[0] != n:
                raise ValueError(f"{n} image-token positions but {proj.shape[0]} image feature tokens")
            x = x.masked_scatter(image_mask.unsqueeze(-1), proj)
        return x

    def forward(self, input_ids, attention_mask, image_features=None, **kwargs):
        """Last hidden states of the LM, ``.last_hidden_state`` (B, T, H)."""
        x = self.input_embeddings(input_ids, image_features)
        return self.language_model.model(inputs_embeds=x, attention_mask=attention_mask, **kwargs)


def load_tokenizer(cfg: ModelConfig):
    """SmolLM2's tokenizer (from the packaged GGUF, cached) with ``<image>`` added."""
    from transformers import AutoTokenizer

    tok_dir = smollm2_dir(cfg.cache_dir) if cfg.composed.lm == "smollm2-135m" else smollm2_tokenizer_dir(cfg.cache_dir)
    tok = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
    tok.add_tokens([IMAGE_TOKEN], special_tokens=True)
    return tok


def build_language_model(cfg: ModelConfig, dtype: torch.dtype, pad_token_id: int):
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    if cfg.composed.lm == "smollm2-135m":
        return AutoModelForCausalLM.from_pretrained(smollm2_dir(cfg.cache_dir), dtype=dtype, local_files_only=True)
    # SmolLM2's special ids: <|endoftext|> 0, <|im_start|> 1, <|im_end|> 2.
    conf = dict(TINY_LM, vocab_size=49152, bos_token_id=1, eos_token_id=2, pad_token_id=pad_token_id)
    conf.update(cfg.composed.lm_config)
    return LlamaForCausalLM(LlamaConfig(**conf)).to(dtype)


def build_composed(cfg: ModelConfig, device: torch.device, dtype: torch.dtype):
    """(ComposedVLM, tokenizer, VisionFeatures) for ``cfg.family == "composed"``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tokenizer = load_tokenizer(cfg)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    encoder, mean, std = build_encoder(cfg.composed, cfg.seed)
    features = VisionFeatures(
        encoder,
        image_size=cfg.composed.image_size,
        image_tokens=cfg.composed.image_tokens,
        mean=mean,
        std=std,
        cache_dir=Path(cfg.cache_dir),
        max_items=cfg.feature_cache_items,
        device=device,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        lm = build_language_model(cfg, dtype, tokenizer.pad_token_id)
        if image_token_id < lm.config.vocab_size:
            raise ValueError("the <image> token must lie outside the LM vocabulary")
        model = ComposedVLM(lm, features.dim, image_token_id, cfg.composed.projector_hidden)
    init_projector(model.projector, cfg)
    return model.to(dtype).to(device), tokenizer, features


def init_projector(projector: nn.Module, cfg: ModelConfig) -> None:
    """Load ``cfg.composed.projector_init`` into ``projector`` (see ``ComposedConfig``)."""
    init, fits_stage1 = cfg.composed.projector_init, has_stage1(cfg.composed)
    if init == "auto":
        init = "stage1" if fits_stage1 else "random"
    if init == "random":
        return
    if init == "stage1":
        if not fits_stage1:
            raise ValueError("projector_init='stage1' exists for EfficientNet-Lite0 + SmolLM2-135M with the "
                             "default projector width; set model.composed.projector_init=random")
        path = STAGE1_PROJECTOR
    else:
        path = Path(init).expanduser()
    from safetensors.torch import load_file

    state = load_file(str(path))
    try:
        projector.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    except RuntimeError as e:
        raise ValueError(f"projector weights in {path} do not fit the projector: {e}") from None
