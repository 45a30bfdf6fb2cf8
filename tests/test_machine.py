"""Saved figures name their machine: CPU model and bf16 support read from cpuinfo; ``model.dtype: auto``
picks bf16 only where the CPU has bf16 units."""
from __future__ import annotations

import torch

from lifelong.machine import auto_dtype, describe_machine, machine_line, resolve_device, resolve_dtype

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
