"""HF image-text-to-text models (LLaVA-1.5 first; Qwen2-VL style processors too).

Real checkpoints load through ``AutoModelForImageTextToText`` and
``AutoProcessor`` from ``cfg.hf.path`` (a local directory, or a hub id the user
named). ``cfg.hf.tiny`` builds a tiny random ``LlavaForConditionalGeneration``
(CLIP vision tower + Llama) and its processor from local pieces, for tests.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from lifelong.data.sample import IMAGE_TOKEN
from lifelong.models.config import ModelConfig
from lifelong.models.weights import smollm2_tokenizer_dir

# Tiny LLaVA: 32x32 images in 8x8 patches -> 16 image tokens; width-64 Llama.
TINY_LLAVA = dict(
    image_size=32,
    patch_size=8,
    vision_hidden=32,
    vision_layers=2,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
)

# ChatML over HF content lists (strings accepted too); images render as <image>.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Module names of the vision->text projector, by architecture.
PROJECTOR_NAMES = ("multi_modal_projector", "merger", "connector", "mm_projector")


def build_tiny_llava(cfg: ModelConfig, dtype: torch.dtype):
    """(model, processor) of a tiny random LLaVA; SmolLM2's tokenizer + ``<image>``."""
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    t = dict(TINY_LLAVA, **cfg.hf.tiny_config)
    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir(cfg.cache_dir), local_files_only=True)
    tok.add_tokens([IMAGE_TOKEN], special_tokens=True)
    size = t["image_size"]
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}),
        tokenizer=tok,
        patch_size=t["patch_size"],
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, dropped by the "default" strategy
        chat_template=TINY_CHAT_TEMPLATE,
    )
    vision = CLIPVisionConfig(
        hidden_size=t["vision_hidden"],
        intermediate_size=2 * t["vision_hidden"],
        num_hidden_layers=t["vision_layers"],
        num_attention_heads=2,
        image_size=size,
        patch_size=t["patch_size"],
        projection_dim=t["vision_hidden"],
    )
    text = LlamaConfig(
        hidden_size=t["hidden_size"],
        intermediate_size=t["intermediate_size"],
        num_hidden_layers=t["num_hidden_layers"],
        num_attention_heads=t["num_attention_heads"],
        num_key_value_heads=t["num_key_value_heads"],
        vocab_size=len(tok),
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=tok.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=(size // t["patch_size"]) ** 2,
    )
    return LlavaForConditionalGeneration(config).to(dtype), processor


def build_hf(cfg: ModelConfig, device: torch.device, dtype: torch.dtype):
    """(model, processor) for ``cfg.family == "hf"``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        if cfg.hf.tiny:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            model, processor = build_tiny_llava(cfg, dtype)
        else:
            if not cfg.hf.path:
                raise ValueError("model.hf.path is empty: name a local checkpoint directory or a hub id")
            from transformers import AutoModelForImageTextToText, AutoProcessor

            local = Path(cfg.hf.path).expanduser().is_dir()
            path = str(Path(cfg.hf.path).expanduser()) if local else cfg.hf.path
            model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, local_files_only=local)
            processor = AutoProcessor.from_pretrained(path, local_files_only=local)
    return model.to(device), processor


def projector_modules(model, cfg: ModelConfig) -> list[str]:
    """Names (suffixes) of the projector modules trained and saved with the adapter."""
    if cfg.hf.projector_modules:
        return list(cfg.hf.projector_modules)
    names = [n for n, _ in model.named_modules()]
    for cand in PROJECTOR_NAMES:
        if any(n == cand or n.endswith("." + cand) for n in names):
            return [cand]
    raise ValueError(f"no projector module ({', '.join(PROJECTOR_NAMES)}) found; set model.hf.projector_modules")
