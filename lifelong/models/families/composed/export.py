"""The composed family's export profile: the base exists only inside ``lifelong``.

Its id is ``lifelong-composed:<vision>+<lm>``; merged weights are the projector
+ LM as ``model.safetensors`` (module names of ``ComposedVLM``) + the
tokenizer; the frozen vision encoder is rebuilt from the config.
"""
from __future__ import annotations

from pathlib import Path

from lifelong.models.families import LIFELONG_LOADER, ExportError

MERGED_COMPOSED_FILE = "model.safetensors"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


class ComposedExport:
    """The composed base (vision encoder -> projector -> LM): rebuilt by ``lifelong`` from the config."""

    def __init__(self, model_cfg):
        self.cfg = model_cfg

    def base_id(self) -> str:
        c = self.cfg.composed
        return f"lifelong-composed:{c.vision}+{c.lm}"

    def card_base_model(self, base: str) -> str | None:
        """The LM's hub id when it has one (the card's ``base_model``), else None."""
        return SMOLLM2_HUB_ID if self.cfg.composed.lm == "smollm2-135m" else None

    def base_note(self) -> str | None:
        """The base's parts for the model card (the projector's starting point is part of the base)."""
        c = self.cfg.composed
        init = c.projector_init
        if init == "auto":
            stage1 = c.vision == "efficientnet_lite0" and c.vision_pretrained and c.lm == "smollm2-135m" \
                and c.projector_hidden in (0, 576)
            init = "stage1" if stage1 else "random"
        start = {
            "stage1": "the stage-1 aligned projector shipped in the package "
                      "(`lifelong/models/assets/projector_stage1.safetensors`, trained once on generated "
                      "image-caption data by `python -m lifelong.models.align`, which reproduces it bit for bit)",
            "random": "a seeded random projector",
        }.get(init, f"the projector weights in `{init}`")
        return (f"Frozen vision encoder `{c.vision}` ({c.image_tokens} pooled image tokens) -> MLP projector -> "
                f"language model `{c.lm}` with LoRA. Round 1 started from {start}; the adapter's "
                "`modules_to_save` projector holds the trained projector, so the adapter alone restores it.")

    def loader_snippet(self, base: str, merged: bool) -> str:
        return LIFELONG_LOADER

    def save_merged(self, loaded, merged, dest: Path) -> None:
        """Projector + LM of ``merged`` as ``model.safetensors``, and the tokenizer, in ``dest``."""
        from safetensors.torch import save_model

        save_model(merged, str(dest / MERGED_COMPOSED_FILE))
        loaded.tokenizer.save_pretrained(dest)

    def load_merged(self, directory: Path):
        """The base rebuilt from the config, its projector and LM weights replaced (the fresh LoRA has B = 0)."""
        from lifelong.models import load_model

        loaded = load_model(self.cfg)
        _load_merged_composed(loaded, directory / MERGED_COMPOSED_FILE)
        return loaded


def _plain_name(name: str) -> str:
    """A parameter name of the LoRA-wrapped base as it reads in the unwrapped model."""
    parts = name.split(".")
    out, i = [], 0
    while i < len(parts):
        if parts[i] in ("base_layer", "original_module"):
            i += 1
        elif parts[i] == "modules_to_save":
            i += 2  # "modules_to_save.<adapter name>"
        else:
            out.append(parts[i])
            i += 1
    return ".".join(out)


def _load_merged_composed(loaded, path: Path) -> None:
    """Copy merged ``ComposedVLM`` weights into the (LoRA-wrapped) base of ``loaded``; LoRA stays zero."""
    import torch
    from safetensors.torch import load_file

    weights = load_file(str(path))
    state = loaded.base.state_dict()
    used, filled, missing = set(), set(), []
    with torch.no_grad():
        for name, tensor in state.items():
            if ".lora_" in name:
                continue
            plain = _plain_name(name)
            if plain in weights:
                tensor.copy_(weights[plain])
                used.add(plain)
                filled.add(tensor.data_ptr())
            else:
                missing.append((plain, tensor))
    # Tied weights are saved once: a missing name must share storage with a filled one.
    untied = [n for n, tensor in missing if tensor.data_ptr() not in filled]
    if untied:
        raise ExportError(f"{path}: no weights for {untied[:3]}")
    left = [k for k in weights if k not in used]
    if left:
        raise ExportError(f"{path}: weights that fit nothing in the model built from the config: {left[:3]}")
