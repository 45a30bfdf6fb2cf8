"""The selection and pruning benchmarks run end to end on a tiny size."""
import importlib
import json


def load(name):
    return importlib.import_module(f"eval.{name}")


def test_bench_select_small(tmp_path):
    out = tmp_path / "s.json"
    res = load("bench_select").main(["--sizes", "3000", "6000", "--no-auto-k", "--out", str(out)])
    rows = res["fixed_k"]["rows"]
    assert [r["n"] for r in rows] == [3000, 6000]
    assert [r["selected"] for r in rows] == [300, 600]
    assert json.loads(out.read_text())["fixed_k"]["rows"][1]["budget"] == 600


def test_bench_prune_small(tmp_path):
    res = load("bench_prune").main(["--n", "6000", "--dim", "32", "--topics", "20", "--cluster-size", "750",
                                    "--out", str(tmp_path / "p.json")])
    assert res["planted_pairs"] == 120 and res["clusters"] == 8  # k = N / cluster_size
    assert res["epsilon_mode"]["recall"] >= 0.95 and res["epsilon_mode"]["precision"] == 1.0
    # Count mode at cap = N - planted removes the planted copies, never both members of a pair.
    assert res["count_mode"]["removed"] == 120
    assert res["count_mode"]["recall"] >= 0.95 and res["count_mode"]["both_removed"] == 0
