"""What machine a measurement ran on (CPU model, cores, bf16 support), and the
dtype a model's frozen base should take on it.

Timings and costs from different machines differ by more than the effects
measured (a bf16 matmul on a CPU with AMX runs several times faster than on one
with AVX512-BF16 only, and ~50x slower on an AVX2-only CPU than the same matmul
in fp32), so every saved figure names its machine, and ``model.dtype: auto``
picks bf16 only where the hardware computes it natively.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path


CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo(path: Path) -> tuple[str, set[str], str]:
    """(model name, flags, "family F model M") of the first processor in ``path``; empty where there is none.

    A virtual machine may show only "AMD EPYC" as the model name, which hides a
    2x difference in speed between CPU generations with the same flags (Zen 4
    and Zen 5 both have AVX512-BF16); the x86 family and model numbers tell them apart.
    """
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "", set(), ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block ends at its blank line
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    family, number = fields.get("cpu family", ""), fields.get("model", "")
    generation = f"family {family} model {number}" if family and number else ""
    return fields.get("model name", ""), set(fields.get("flags", "").split()), generation


def _bf16_unit(flags: set[str]) -> str:
    return "AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else \
        "none" if flags else "unknown"


def auto_dtype(device: str, cpuinfo: Path = CPUINFO) -> str:
    """What ``model.dtype: auto`` means on ``device`` ("cpu", "cuda", "cuda:1", "mps", ...).

    bfloat16 on a GPU that supports it and on a CPU with bf16 matrix instructions
    (AMX or AVX512-BF16); float32 everywhere else, where bf16 is emulated and
    slower than fp32 (on an AVX2-only CPU a bf16 matmul takes ~50x as long).
    Only the frozen base takes this dtype: LoRA and the projector keep fp32
    master weights either way.
    """
    kind = device.split(":")[0]
    if kind == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    if kind == "cpu":
        return "bfloat16" if _bf16_unit(_cpuinfo(cpuinfo)[1]) in ("AMX", "AVX512-BF16") else "float32"
    return "float32"


def resolve_device(device: str) -> str:
    """``model.device`` with ``"auto"`` resolved: CUDA when available, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str = "auto") -> str:
    """``dtype`` with ``"auto"`` resolved for ``device`` (``"auto"`` as in ``resolve_device``)."""
    return auto_dtype(resolve_device(device)) if dtype == "auto" else dtype


def describe_machine(cpuinfo: Path = CPUINFO) -> dict:
    """{"cpu", "cores", "bf16", "torch", "python"} of this machine (CPU facts read from ``cpuinfo``), and
    "cpu_generation" ("family 26 model 2") where cpuinfo has it."""
    model, flags, generation = _cpuinfo(cpuinfo)
    bf16 = _bf16_unit(flags)
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        torch_version = "not installed"
    m = {"cpu": model or platform.processor() or platform.machine(), "cores": os.cpu_count(),
         "bf16": bf16, "torch": torch_version, "python": platform.python_version()}
    if generation:
        m["cpu_generation"] = generation
    return m


def machine_line(m: dict | None) -> str:
    """One line for a report: ``AMD EPYC (family 26 model 2), 2 cores, bf16 AVX512-BF16, torch 2.14.1``."""
    if not m:
        return "not recorded"
    cpu = m.get("cpu", "?") + (f" ({m['cpu_generation']})" if m.get("cpu_generation") else "")
    return f"{cpu}, {m.get('cores', '?')} cores, bf16 {m.get('bf16', '?')}, torch {m.get('torch', '?')}"
