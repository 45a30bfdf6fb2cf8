"""Models: the offline composed default and HF image-text-to-text models, with LoRA.

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
