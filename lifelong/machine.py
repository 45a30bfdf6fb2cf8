"""What machine a measurement ran on (CPU model, cores, bf16 support), how much
of it the measurement had (``CpuUse``), and the dtype a model's frozen base
should take on it.

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


# A run that keeps every core busy shows a CPU share of ~0.95 alone on the
# machine (measured: 0.97 over the first rounds of a comparison run on 2
# cores); beside a second CPU-bound job it drops to ~0.5 and its wall time
# grows by as much. Below this share a timing is flagged as taken on a shared
# machine.
SHARED_BELOW = 0.8


class CpuUse:
    """How much of the machine a piece of work had, measured over all of it.

    ``with CpuUse() as use: ...`` then ``use.record()``: wall seconds, CPU
    seconds of this process and of the child processes it waited for in the
    meantime (``subprocess.run`` waits), the cores, their ratio
    ``cpu_share = cpu_s / (wall_s * cores)`` and the load average at the end.
    The share assumes the work may use every core (torch's default thread
    count): with fewer threads it is lower on an idle machine too, so compare
    shares of the same kind of work. Unlike a load average sampled at the end,
    the share covers the whole interval: an hour of contention in the middle of
    a run shows.
    """

    def __init__(self) -> None:
        self._start: tuple[float, float] | None = None
        self._end: tuple[float, float] | None = None

    @staticmethod
    def _now() -> tuple[float, float]:
        import resource
        import time

        cpu = sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                   resource.getrusage(resource.RUSAGE_CHILDREN)))
        return time.perf_counter(), cpu

    def start(self) -> "CpuUse":
        """Start measuring (``with CpuUse()`` does it); ``record()`` then measures up to now."""
        self._start, self._end = self._now(), None
        return self

    def __enter__(self) -> "CpuUse":
        return self.start()

    def __exit__(self, *exc) -> None:
        self._end = self._now()

    def record(self) -> dict:
        """{"wall_s", "cpu_s", "cores", "cpu_share", "load_average"}; up to now if the block is still open."""
        if self._start is None:
            raise RuntimeError("CpuUse.record() before the measured block started")
        end = self._end or self._now()
        wall, cpu = end[0] - self._start[0], end[1] - self._start[1]
        cores = os.cpu_count() or 1
        load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
        # the share from the seconds as recorded, so a record's own fields reproduce it
        wall, cpu = round(wall, 2), round(cpu, 2)
        return {"wall_s": wall, "cpu_s": cpu, "cores": cores,
                "cpu_share": round(cpu / (wall * cores), 3) if wall > 0 else None, "load_average": load}


def shared(use: dict | None) -> bool:
    """Whether a ``CpuUse`` record says the work shared the machine (its seconds are inflated)."""
    share = (use or {}).get("cpu_share")
    return share is not None and share < SHARED_BELOW


def use_line(use: dict | None) -> str:
    """``CPU share 0.97 over 2,053 s`` or, below ``SHARED_BELOW``, the same with a warning."""
    if not use or use.get("cpu_share") is None:
        return "CPU share not recorded"
    line = f"CPU share {use['cpu_share']:.2f} over {use['wall_s']:,.0f} s"
    return line + (" (shared the machine: its seconds are inflated)" if shared(use) else "")
