"""The HF family's export profile: plain ``transformers``/``peft`` load the export.

The base is the HF checkpoint (``model.hf.path``, absolute when it is a local
directory); merged weights are ``save_pretrained`` safetensors + the processor,
which plain ``transformers`` loads.
"""
from __future__ import annotations

import copy
from pathlib import Path

from lifelong.models.families import LIFELONG_LOADER


class HFExport:
    """An HF image-text-to-text base: plain ``transformers``/``peft`` load the export."""

    def __init__(self, model_cfg):
        self.cfg = model_cfg

    def base_id(self) -> str:
        """``base_model_name_or_path``; tiny random test models get an id with a colon, which no hub accepts."""
        hf = self.cfg.hf
        if hf.tiny:
            from lifelong.models.families.hf.tiny import tiny_name

            return f"lifelong-tiny-{tiny_name(hf.tiny)}:seed={self.cfg.seed}"
        local = Path(hf.path).expanduser()
        return str(local.resolve()) if local.is_dir() else hf.path

    def card_base_model(self, base: str) -> str | None:
        """``base`` when it reads as a hub id (no colon, not a local path), else None."""
        if ":" in base or Path(base).expanduser().exists():
            return None
        return base

    def base_note(self) -> str | None:
        return None

    def loader_snippet(self, base: str, merged: bool) -> str:
        if ":" in base:
            return LIFELONG_LOADER
        if merged:
            return (
                "from transformers import AutoModelForImageTextToText, AutoProcessor\n"
                'model = AutoModelForImageTextToText.from_pretrained("path/to/this/dir")\n'
                'processor = AutoProcessor.from_pretrained("path/to/this/dir")'
            )
        return (
            "from transformers import AutoModelForImageTextToText\n"
            "from peft import PeftModel\n"
            f'base = AutoModelForImageTextToText.from_pretrained("{base}")\n'
            'model = PeftModel.from_pretrained(base, "path/to/this/dir")'
        )

    def save_merged(self, loaded, merged, dest: Path) -> None:
        """``merged`` (the unwrapped model of ``loaded``) as a ``from_pretrained`` checkpoint in ``dest``."""
        merged.save_pretrained(dest, safe_serialization=True)
        loaded.backend.processor.save_pretrained(dest)

    def load_merged(self, directory: Path):
        """The merged checkpoint is the base (with a fresh, zero-effect LoRA)."""
        from lifelong.models import load_model

        cfg = copy.deepcopy(self.cfg)
        cfg.hf.path, cfg.hf.tiny = str(directory.resolve()), False
        return load_model(cfg)
