"""Models: the offline composed default and HF image-text-to-text models, with LoRA.

    m = load_model(ModelConfig())                  # EfficientNet-Lite0 + SmolLM2-135M, offline
    batch = m.collate(samples, pool.load_image)    # input_ids, attention_mask, labels, image tensors
    loss = m.per_sample_loss(batch)                # (B,) mean NLL over response tokens
    m.generate(samples, pool.load_image)           # greedy answers
    m.save_adapter(dir); m.load_adapter(dir)       # PEFT layout, projector included

``from lifelong.models import ModelConfig`` does not import torch; ``load_model``
and ``LoadedModel`` are imported on first use.
"""
from lifelong.models.config import ComposedConfig, HFConfig, LoraSettings, ModelConfig

__all__ = ["ComposedConfig", "HFConfig", "LoraSettings", "ModelConfig", "load_model", "LoadedModel"]


def __getattr__(name: str):
    if name in ("load_model", "LoadedModel"):
        from lifelong.models import loaded

        return getattr(loaded, name)
    raise AttributeError(f"module 'lifelong.models' has no attribute {name!r}")
