"""What machine a measurement ran on: CPU model, cores and bf16 support.

Timings and costs from different machines differ by more than the effects
measured (a bf16 matmul on a CPU with AMX runs several times faster than on one
with AVX512-BF16 only), so every saved figure names its machine.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path


CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo(path: Path) -> tuple[str, set[str]]:
    """(model name, flags) of the first processor in ``path``; ("", set()) where there is none."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "", set()
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model, flags


def describe_machine(cpuinfo: Path = CPUINFO) -> dict:
    """{"cpu", "cores", "bf16", "torch", "python"} of this machine (CPU facts read from ``cpuinfo``)."""
    model, flags = _cpuinfo(cpuinfo)
    bf16 = "AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else \
        "none" if flags else "unknown"
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        torch_version = "not installed"
    return {"cpu": model or platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "bf16": bf16, "torch": torch_version, "python": platform.python_version()}


def machine_line(m: dict | None) -> str:
    """One line for a report: ``AMD EPYC, 2 cores, bf16 AVX512-BF16, torch 2.14.1``."""
    if not m:
        return "not recorded"
    return f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, bf16 {m.get('bf16', '?')}, torch {m.get('torch', '?')}"
