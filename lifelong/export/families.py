"""What an export does per model family: one profile, chosen once from ``ModelConfig.family``.

Each profile answers, from the run's model config alone: the base id written
to ``adapter_config.json``, the model card's hub ``base_model`` and its note on
the base, the loader snippet the card shows, how merged weights are saved, and
how a merged export is loaded back. ``EXPORT_PROFILES`` is keyed by family, like
``lifelong.models.backends.BACKENDS``; the profiles live here rather than on the
backends because they need no built model (a backend is made with one) and
because importing this module must not import torch (export's card and checks
run without it).

- ``HFExport``: the base is the HF checkpoint (``model.hf.path``, absolute
  when it is a local directory); merged weights are ``save_pretrained``
  safetensors + the processor, which plain ``transformers`` loads.
- ``ComposedExport``: the base exists only inside ``lifelong``
  (``lifelong-composed:<vision>+<lm>``); merged weights are the projector + LM
  as ``model.safetensors`` (module names of ``ComposedVLM``) + the tokenizer;
  the frozen vision encoder is rebuilt from the config.
"""
from __future__ import annotations

import copy
from pathlib import Path

MERGED_COMPOSED_FILE = "model.safetensors"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"

LIFELONG_LOADER = (
    "# The base model exists inside lifelong only: rebuild it from lifelong_model.yaml.\n"
    "from lifelong.export import load_exported\n"
    'loaded = load_exported("path/to/this/dir")  # a LoadedModel: .model, .generate(samples, image_loader)'
)


class ExportError(ValueError):
    """An export that cannot be made; nothing was written."""


class HFExport:
    """An HF image-text-to-text base: plain ``transformers``/``peft`` load the export."""

    def __init__(self, model_cfg):
        self.cfg = model_cfg

    def base_id(self) -> str:
        """``base_model_name_or_path``; tiny random test models get an id with a colon, which no hub accepts."""
        hf = self.cfg.hf
        if hf.tiny:
            from lifelong.models.tiny import tiny_name

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


EXPORT_PROFILES = {"composed": ComposedExport, "hf": HFExport}


def export_profile(model_cfg) -> HFExport | ComposedExport:
    """The export profile of ``model_cfg.family``; an unknown family is an :class:`ExportError`."""
    try:
        profile = EXPORT_PROFILES[model_cfg.family]
    except KeyError:
        raise ExportError(f"model.family {model_cfg.family!r} has no export profile; "
                          f"known families: {', '.join(sorted(EXPORT_PROFILES))}") from None
    return profile(model_cfg)


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
