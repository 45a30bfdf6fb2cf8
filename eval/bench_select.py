"""Benchmark: cluster + route + sample (Adapt-inf selection core) on synthetic sketches.

Data: N unit sketches of 512 dims in fp16 (``skills`` random directions plus
noise, like gradient sketches of different skills) and 6 synthetic expert
scores per sample with different shapes (log-normal "ppl", bounded "el2n",
gamma "entropy", skill-scaled "grand", "ig" around 1 with text-only samples at
exactly 1, uniform "random"). Timed per size: spherical k-means with the
default ClusterConfig (K = 16), then again with K chosen over the default
k_range by silhouette (skip with ``--no-auto-k``), entropy routing,
water-filled budget (10% of the pool) and CCS draws. Data generation is not
timed. Peak memory = max resident set size of the process so far (getrusage),
so the figure after each size covers everything up to it.

Target (issue 5): 200,000 sketches in <= 30 s and <= 4 GiB on 2 cores.
Run: ``python -m eval.bench_select [--sizes 25000 50000 100000 200000]``;
writes eval/results/bench_select.json.
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from lifelong.selection.budget import BudgetConfig, resolve_budget, water_fill
from lifelong.selection.ccs import CCSConfig, select_per_cluster
from lifelong.selection.cluster import ClusterConfig, cluster
from lifelong.selection.route import RouteConfig, route

RESULTS = Path(__file__).resolve().parent / "results"


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def make_data(n: int, dim: int, skills: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sketches (n, dim) fp16 unit rows and expert -> (n,) float32 scores."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((skills, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    skill = rng.integers(0, skills, n)
    x = np.empty((n, dim), dtype=np.float16)
    for s in range(0, n, 50_000):
        e = min(s + 50_000, n)
        rows = centres[skill[s:e]] + 1.5 * rng.standard_normal((e - s, dim), dtype=np.float32) / np.sqrt(dim)
        x[s:e] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    text_only = rng.random(n) < 0.2
    scores = {
        "ppl": np.exp(rng.normal(1.0 + 0.1 * (skill % 5), 0.5, n)),
        "el2n": rng.beta(2.0, 5.0, n),
        "entropy": rng.gamma(2.0 + skill % 3, 1.0, n),
        "grand": rng.exponential(1.0 + skill % 4, n),
        "ig": np.where(text_only, 1.0, 1.0 + rng.normal(0.05, 0.1, n)),
        "random": rng.random(n),
    }
    return x, {k: v.astype(np.float32) for k, v in scores.items()}


def run_once(x: np.ndarray, scores: dict[str, np.ndarray], ccfg: ClusterConfig) -> dict:
    t0 = time.perf_counter()
    clusters = cluster(x, ccfg)
    t1 = time.perf_counter()
    routed = route(clusters.labels, scores, clusters.k, RouteConfig())
    t2 = time.perf_counter()
    budget = resolve_budget(len(x), BudgetConfig(fraction=0.1))
    shares = water_fill(np.bincount(clusters.labels, minlength=clusters.k), budget)
    selected = select_per_cluster(clusters.labels, scores, routed.chosen, shares, CCSConfig())
    t3 = time.perf_counter()
    assert len(selected) == budget
    chosen = routed.chosen_names()
    return {
        "n": len(x), "k": clusters.k, "budget": budget, "selected": int(len(selected)),
        "experts_chosen": {e: chosen.count(e) for e in routed.experts if e in chosen},
        "seconds": {"cluster": round(t1 - t0, 3), "route": round(t2 - t1, 3),
                    "budget_and_ccs": round(t3 - t2, 3), "total": round(t3 - t0, 3)},
        "peak_rss_gib_so_far": round(peak_rss_gib(), 3),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[25_000, 50_000, 100_000, 200_000])
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--skills", type=int, default=24)
    ap.add_argument("--no-auto-k", action="store_true", help="skip the second scan with K chosen by silhouette")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_select.json")
    args = ap.parse_args(argv)

    scans = {"fixed_k": ClusterConfig()}
    if not args.no_auto_k:
        scans["auto_k"] = ClusterConfig(k=None)
    result = {"dim": args.dim, "targets": {"n": 200_000, "seconds": 30, "peak_gib": 4}}
    for name, ccfg in scans.items():
        print(f"{name}: {asdict(ccfg)}")
        rows = []
        for n in sorted(args.sizes):
            x, scores = make_data(n, args.dim, args.skills, args.seed)
            row = run_once(x, scores, ccfg)
            rows.append(row)
            print(f"  n={n:>7}  K={row['k']:>3}  cluster {row['seconds']['cluster']:6.2f}s  "
                  f"route {row['seconds']['route']:5.2f}s  ccs {row['seconds']['budget_and_ccs']:5.2f}s  "
                  f"total {row['seconds']['total']:6.2f}s  peak {row['peak_rss_gib_so_far']:.2f} GiB")
            del x, scores
        result[name] = {"cluster_config": asdict(ccfg), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
