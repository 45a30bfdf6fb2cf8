"""Saved figures name their machine: CPU model and bf16 support read from cpuinfo; ``model.dtype: auto``
picks bf16 only where the CPU has bf16 units."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from lifelong.machine import (SHARED_BELOW, CpuUse, auto_dtype, describe_machine, machine_line, resolve_device,
                             resolve_dtype, shared, use_line)

CPU = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu sse2 avx2 avx512f {extra}

processor\t: 1
cpu family\t: 25
model\t\t: 17
model name\t: something else
flags\t\t: fpu
"""


def test_bf16_support_and_model_come_from_the_first_processor(tmp_path):
    cases = {"avx512_bf16 amx_bf16 amx_tile": "AMX", "avx512_bf16": "AVX512-BF16", "": "none"}
    for extra, expected in cases.items():
        path = tmp_path / "cpuinfo"
        path.write_text(CPU.format(extra=extra))
        m = describe_machine(path)
        assert m["bf16"] == expected, extra
        assert m["cpu"] == "Intel(R) Xeon(R) Platinum 8488C"
        assert m["cpu_generation"] == "family 6 model 143"  # the first processor's, not the second's
        assert m["cores"] >= 1 and m["torch"]


def test_without_cpuinfo_the_support_is_unknown_not_none(tmp_path):
    m = describe_machine(tmp_path / "missing")
    assert m["bf16"] == "unknown" and m["cpu"] and "cpu_generation" not in m


def test_report_line():
    m = {"cpu": "AMD EPYC", "cores": 2, "bf16": "AVX512-BF16", "torch": "2.14.1"}
    assert machine_line(m) == "AMD EPYC, 2 cores, bf16 AVX512-BF16, torch 2.14.1"
    assert machine_line(None) == "not recorded"
    # Two "AMD EPYC" with the same flags differ 2x in speed (Zen 4 vs Zen 5): the family and model say which
    m["cpu_generation"] = "family 26 model 2"
    assert machine_line(m) == "AMD EPYC (family 26 model 2), 2 cores, bf16 AVX512-BF16, torch 2.14.1"


def test_auto_dtype_is_bf16_only_on_cpus_with_bf16_units(tmp_path):
    path = tmp_path / "cpuinfo"
    # AVX2 and even AVX512F without BF16 emulate bf16 (a matmul ~50x slower than fp32): fp32 there
    cases = {"avx512_bf16 amx_bf16 amx_tile": "bfloat16", "avx512_bf16": "bfloat16", "": "float32"}
    for extra, expected in cases.items():
        path.write_text(CPU.format(extra=extra))
        assert auto_dtype("cpu", path) == expected, extra
    assert auto_dtype("cpu", tmp_path / "missing") == "float32"
    assert auto_dtype("mps", path) == "float32"


def test_an_explicit_dtype_is_kept_whatever_the_machine():
    for dtype in ("float32", "bfloat16", "float16"):
        assert resolve_dtype(dtype, "cpu") == dtype
    assert resolve_dtype("auto", "cpu") == auto_dtype("cpu")


def test_auto_device_is_cuda_only_where_there_is_one():
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


BURN = "import time\nwhile time.process_time() < {s}: pass"  # CPU seconds, whatever else runs on the machine


def test_cpu_use_counts_the_cpu_seconds_of_the_children_it_waited_for():
    with CpuUse() as use:
        procs = [subprocess.Popen([sys.executable, "-c", BURN.format(s=0.6)]) for _ in range(2)]
        for p in procs:
            p.wait()
    r = use.record()
    # two children of 0.6 CPU seconds each (plus interpreter start-up), none of it in this process
    assert 1.2 <= r["cpu_s"] <= 1.2 + 2 * 0.5, r
    assert r["wall_s"] >= 0.6 and r["cores"] >= 1
    assert r["cpu_share"] == pytest.approx(r["cpu_s"] / (r["wall_s"] * r["cores"]), abs=0.01)
    assert len(r["load_average"]) == 3


def test_idle_work_has_a_low_share_and_a_busy_process_a_high_one():
    with CpuUse() as use:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.8)"], check=True)
    idle = use.record()
    assert idle["wall_s"] >= 0.8 and idle["cpu_share"] < 0.3  # start-up only, over 0.8 s and every core
    with CpuUse() as use:
        subprocess.run([sys.executable, "-c", BURN.format(s=0.8)], check=True)
    busy = use.record()
    # one core busy: the share can reach 1/cores, less whatever the machine's other work took
    assert busy["cpu_s"] >= 0.8 and busy["cpu_share"] <= 1 / busy["cores"] + 0.05


def test_a_share_below_the_threshold_is_flagged():
    assert not shared({"cpu_share": 0.97}) and shared({"cpu_share": SHARED_BELOW - 0.01})
    assert not shared(None) and not shared({"cpu_share": None})
    assert use_line({"cpu_share": 0.97, "wall_s": 2053.4}) == "CPU share 0.97 over 2,053 s"
    assert use_line({"cpu_share": 0.52, "wall_s": 3120.0}).endswith("(shared the machine: its seconds are inflated)")
    assert use_line(None) == "CPU share not recorded"
    with pytest.raises(RuntimeError):
        CpuUse().record()
