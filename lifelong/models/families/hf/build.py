"""HF image-text-to-text models: LLaVA-1.5/NeXT/OneVision, Qwen2-VL/2.5-VL, Idefics3/SmolVLM, Gemma 3.

Real checkpoints load through ``AutoModelForImageTextToText`` and
``AutoProcessor`` from ``cfg.hf.path`` (a local directory, or a hub id the user
named). ``cfg.hf.tiny: <family>`` builds a tiny random model of that family and
its processor from local pieces (``tiny.py`` beside this module), for tests.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from lifelong.models.config import ModelConfig
from lifelong.models.families.hf.tiny import build_tiny

# Module names of the vision->text projector, by architecture.
PROJECTOR_NAMES = ("multi_modal_projector", "merger", "connector", "mm_projector")


def build_hf(cfg: ModelConfig, device: torch.device, dtype: torch.dtype):
    """(model, processor) for ``cfg.family == "hf"``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        if cfg.hf.tiny:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            model, processor = build_tiny(cfg, dtype)
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
