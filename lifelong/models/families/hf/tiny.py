"""Tiny random HF VLMs of each family, with processors assembled from local pieces.

``model.hf.tiny: <family>`` builds one of these instead of loading a checkpoint:
a few hundred thousand random parameters, the family's real model class, image
processor and processor class, SmolLM2's tokenizer (from the offline GGUF) with
the family's special tokens added, and a chat template shaped like the real
checkpoint's. No hub access. They exist so that every family runs through the
whole loop in tests; they are not meant to learn anything.

Each builder returns ``(model, processor)``; ``TINY_BUILDERS`` is the registry
(``true`` in a config means ``llava``). Sizes: LM width 64, 2 decoder layers,
4 heads (head dim 16), vision width 32, images of 32 px per crop/tile.
``tiny_config`` keys override the ``TINY`` numbers below.
"""
from __future__ import annotations

from typing import Callable

import torch

from lifelong.models.weights import smollm2_tokenizer_dir

TINY = dict(
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

# ChatML over HF content lists (strings accepted too); an image renders as ``{image}``.
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{image}{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Idefics3 / SmolVLM: "User:<image>text<end_of_utterance>\nAssistant: answer<end_of_utterance>\n".
IDEFICS3_CHAT = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is not string and message['content'][0]['type'] == 'image' %}:{% else %}: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
# Gemma 3: "<start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n...<end_of_turn>\n".
GEMMA3_CHAT = (
    "{% for message in messages %}<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<start_of_image>{% else %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _tokenizer(cfg, tokens: list[str], eos: str | None = None, named: dict | None = None):
    """SmolLM2's tokenizer with ``tokens`` added as special tokens (and ``eos`` as EOS).

    ``named``: special tokens the processor reads as tokenizer attributes (``boi_token`` ...).
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir(cfg.cache_dir), local_files_only=True,
                                        extra_special_tokens=named or {})
    tok.add_tokens(tokens, special_tokens=True)
    if eos is not None:
        tok.eos_token = eos
    return tok


def _llama(t: dict, tok, **extra):
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=t["hidden_size"], intermediate_size=t["intermediate_size"],
        num_hidden_layers=t["num_hidden_layers"], num_attention_heads=t["num_attention_heads"],
        num_key_value_heads=t["num_key_value_heads"], vocab_size=len(tok), bos_token_id=1,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **extra,
    )


def _clip(t: dict, image_size: int):
    from transformers import CLIPVisionConfig

    h = t["vision_hidden"]
    return CLIPVisionConfig(hidden_size=h, intermediate_size=2 * h, num_hidden_layers=t["vision_layers"],
                            num_attention_heads=2, image_size=image_size, patch_size=t["patch_size"], projection_dim=h)


def _siglip(t: dict, image_size: int, patch_size: int):
    from transformers import SiglipVisionConfig

    h = t["vision_hidden"]
    return SiglipVisionConfig(hidden_size=h, intermediate_size=2 * h, num_hidden_layers=t["vision_layers"],
                              num_attention_heads=2, image_size=image_size, patch_size=patch_size)


def build_llava(cfg, t: dict):
    """LLaVA-1.5: CLIP tower, one 32x32 image -> 16 tokens."""
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tok = _tokenizer(cfg, ["<image>"])
    size = t["image_size"]
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}),
        tokenizer=tok, patch_size=t["patch_size"], vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, dropped by the "default" strategy
        chat_template=CHATML.replace("{image}", "<image>"),
    )
    config = LlavaConfig(vision_config=_clip(t, size), text_config=_llama(t, tok),
                         image_token_index=tok.convert_tokens_to_ids("<image>"),
                         image_seq_length=(size // t["patch_size"]) ** 2)
    return LlavaForConditionalGeneration(config), processor


def _qwen(cfg, t: dict, v25: bool):
    import transformers as tf

    tok = _tokenizer(cfg, ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"])
    patch, merge = 4, 2
    image_processor = tf.Qwen2VLImageProcessor(patch_size=patch, merge_size=merge, temporal_patch_size=2,
                                               min_pixels=(patch * merge) ** 2, max_pixels=64 * 64)
    video_processor = tf.Qwen2VLVideoProcessor(patch_size=patch, merge_size=merge, temporal_patch_size=2)
    proc_cls = tf.Qwen2_5_VLProcessor if v25 else tf.Qwen2VLProcessor
    processor = proc_cls(image_processor=image_processor, tokenizer=tok, video_processor=video_processor,
                         chat_template=CHATML.replace("{image}", "<|vision_start|><|image_pad|><|vision_end|>"))
    h = t["hidden_size"]
    head_dim = h // t["num_attention_heads"]
    q = head_dim // 2
    text = dict(hidden_size=h, intermediate_size=t["intermediate_size"], num_hidden_layers=t["num_hidden_layers"],
                num_attention_heads=t["num_attention_heads"], num_key_value_heads=t["num_key_value_heads"],
                vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                 "mrope_section": [q - 2 * (q // 3), q // 3, q // 3]})
    vh = t["vision_hidden"]
    if v25:
        vision = dict(depth=t["vision_layers"], hidden_size=vh, intermediate_size=2 * vh, num_heads=2, out_hidden_size=h,
                      patch_size=patch, spatial_merge_size=merge, temporal_patch_size=2, window_size=2 * patch * merge,
                      fullatt_block_indexes=[t["vision_layers"] - 1])
        config = tf.Qwen2_5_VLConfig(text_config=text, vision_config=vision)
        model_cls = tf.Qwen2_5_VLForConditionalGeneration
    else:
        vision = dict(depth=t["vision_layers"], embed_dim=vh, hidden_size=h, num_heads=2, mlp_ratio=2,
                      patch_size=patch, spatial_merge_size=merge, temporal_patch_size=2)
        config = tf.Qwen2VLConfig(text_config=text, vision_config=vision)
        model_cls = tf.Qwen2VLForConditionalGeneration
    config.image_token_id = tok.convert_tokens_to_ids("<|image_pad|>")
    config.video_token_id = tok.convert_tokens_to_ids("<|video_pad|>")
    config.vision_start_token_id = tok.convert_tokens_to_ids("<|vision_start|>")
    config.vision_end_token_id = tok.convert_tokens_to_ids("<|vision_end|>")
    return model_cls(config), processor


def build_qwen2_vl(cfg, t: dict):
    """Qwen2-VL: 4 px patches merged 2x2, native resolution (a 48x32 image -> 24 tokens), M-RoPE."""
    return _qwen(cfg, t, v25=False)


def build_qwen2_5_vl(cfg, t: dict):
    """Qwen2.5-VL: as Qwen2-VL, with window attention in the vision tower."""
    return _qwen(cfg, t, v25=True)


def _idefics3(cfg, t: dict, smol: bool):
    import transformers as tf

    rows = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    tok = _tokenizer(cfg, ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", *rows],
                     eos="<end_of_utterance>")
    size, patch, scale = t["image_size"], t["patch_size"], 2
    seq = (size // patch) ** 2 // scale**2
    ip_cls = tf.SmolVLMImageProcessor if smol else tf.Idefics3ImageProcessor
    image_processor = ip_cls(size={"longest_edge": 2 * size}, max_image_size={"longest_edge": size})
    if smol:
        processor = tf.SmolVLMProcessor(image_processor=image_processor, tokenizer=tok,
                                        video_processor=tf.SmolVLMVideoProcessor(), image_seq_len=seq,
                                        chat_template=IDEFICS3_CHAT)
    else:
        processor = tf.Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=seq,
                                         chat_template=IDEFICS3_CHAT)
    vh = t["vision_hidden"]
    vision = dict(hidden_size=vh, intermediate_size=2 * vh, num_hidden_layers=t["vision_layers"],
                  num_attention_heads=2, image_size=size, patch_size=patch)
    text = _llama(t, tok)
    cfg_cls = tf.SmolVLMConfig if smol else tf.Idefics3Config
    config = cfg_cls(vision_config=vision, text_config=text, scale_factor=scale,
                     image_token_id=tok.convert_tokens_to_ids("<image>"), pad_token_id=tok.pad_token_id)
    model_cls = tf.SmolVLMForConditionalGeneration if smol else tf.Idefics3ForConditionalGeneration
    return model_cls(config), processor


def build_idefics3(cfg, t: dict):
    """Idefics3: images split into 32 px crops (+ a global view), 4 tokens per crop after pixel shuffle."""
    return _idefics3(cfg, t, smol=False)


def build_smolvlm(cfg, t: dict):
    """SmolVLM: Idefics3's architecture with SmolVLM's processor classes."""
    return _idefics3(cfg, t, smol=True)


PINPOINTS = [[32, 32], [32, 64], [64, 32], [64, 64]]


def build_llava_next(cfg, t: dict):
    """LLaVA-NeXT: CLIP tower, anyres tiles of 32 px from ``PINPOINTS`` + a base view, newline tokens."""
    import transformers as tf

    tok = _tokenizer(cfg, ["<image>"])
    size = t["image_size"]
    image_processor = tf.LlavaNextImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                                 image_grid_pinpoints=PINPOINTS)
    processor = tf.LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, patch_size=t["patch_size"],
                                      vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                      chat_template=CHATML.replace("{image}", "<image>"))
    config = tf.LlavaNextConfig(vision_config=_clip(t, size), text_config=_llama(t, tok),
                                image_token_index=tok.convert_tokens_to_ids("<image>"),
                                image_grid_pinpoints=PINPOINTS, image_seq_length=(size // t["patch_size"]) ** 2)
    return tf.LlavaNextForConditionalGeneration(config), processor


def build_llava_onevision(cfg, t: dict):
    """LLaVA-OneVision: SigLIP tower, anyres for a single image, base view only for several."""
    import transformers as tf

    tok = _tokenizer(cfg, ["<image>", "<video>"])
    size = t["image_size"]
    image_processor = tf.LlavaOnevisionImageProcessor(size={"height": size, "width": size},
                                                      image_grid_pinpoints=PINPOINTS)
    n_tokens = (size // t["patch_size"]) ** 2
    processor = tf.LlavaOnevisionProcessor(
        image_processor=image_processor, tokenizer=tok, video_processor=tf.LlavaOnevisionVideoProcessor(),
        num_image_tokens=n_tokens, vision_feature_select_strategy="full",
        chat_template=CHATML.replace("{image}", "<image>"), vision_aspect_ratio="anyres_max_9",
    )
    config = tf.LlavaOnevisionConfig(
        vision_config=_siglip(t, size, t["patch_size"]), text_config=_llama(t, tok),
        image_token_index=tok.convert_tokens_to_ids("<image>"), video_token_index=tok.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=PINPOINTS, vision_feature_select_strategy="full", vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9",
    )
    return tf.LlavaOnevisionForConditionalGeneration(config), processor


def build_gemma3(cfg, t: dict):
    """Gemma 3: SigLIP tower on 32 px images (4 px patches), pooled to 16 soft tokens, bidirectional image attention."""
    import transformers as tf

    named = {"boi_token": "<start_of_image>", "image_token": "<image_soft_token>", "eoi_token": "<end_of_image>"}
    tok = _tokenizer(cfg, ["<start_of_turn>", "<end_of_turn>"], eos="<end_of_turn>", named=named)
    size, patch, n_tokens = t["image_size"], 4, 16
    image_processor = tf.Gemma3ImageProcessor(size={"height": size, "width": size})
    processor = tf.Gemma3Processor(image_processor=image_processor, tokenizer=tok, chat_template=GEMMA3_CHAT,
                                   image_seq_length=n_tokens)
    h = t["hidden_size"]
    text = dict(hidden_size=h, intermediate_size=t["intermediate_size"], num_hidden_layers=t["num_hidden_layers"],
                num_attention_heads=t["num_attention_heads"], num_key_value_heads=t["num_key_value_heads"],
                head_dim=h // t["num_attention_heads"], vocab_size=len(tok), sliding_window=16,
                layer_types=["sliding_attention", "full_attention"][: t["num_hidden_layers"]]
                + ["full_attention"] * max(0, t["num_hidden_layers"] - 2),
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=1)
    config = tf.Gemma3Config(
        text_config=text, vision_config=_siglip(t, size, patch).to_dict(), mm_tokens_per_image=n_tokens,
        boi_token_index=tok.convert_tokens_to_ids("<start_of_image>"),
        eoi_token_index=tok.convert_tokens_to_ids("<end_of_image>"),
        image_token_index=tok.convert_tokens_to_ids("<image_soft_token>"),
    )
    model = tf.Gemma3ForConditionalGeneration(config)
    # Gemma 3 initialises its image projection to zero, which would make images invisible to a random model.
    with torch.no_grad():
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0, t["vision_hidden"] ** -0.5)
    return model, processor


TINY_BUILDERS: dict[str, Callable] = {
    "llava": build_llava,
    "qwen2_vl": build_qwen2_vl,
    "qwen2_5_vl": build_qwen2_5_vl,
    "idefics3": build_idefics3,
    "smolvlm": build_smolvlm,
    "llava_next": build_llava_next,
    "llava_onevision": build_llava_onevision,
    "gemma3": build_gemma3,
}


def tiny_name(tiny: bool | str) -> str:
    """``model.hf.tiny`` as a registry name: ``""`` = not tiny, ``true`` = ``"llava"``."""
    if tiny is True:
        return "llava"
    if not tiny:
        return ""
    if tiny not in TINY_BUILDERS:
        raise ValueError(f"model.hf.tiny: unknown family {tiny!r}; known: {sorted(TINY_BUILDERS)}")
    return tiny


def build_tiny(cfg, dtype: torch.dtype):
    """(model, processor) of the tiny family named by ``cfg.hf.tiny``."""
    t = dict(TINY, **cfg.hf.tiny_config)
    model, processor = TINY_BUILDERS[tiny_name(cfg.hf.tiny)](cfg, t)
    return model.to(dtype), processor
