"""Benchmark: the whole loop with the tiny model at growing pools; time, memory and disk per pool size.

For each pool size P: the built-in stream cut to ``--datasets`` datasets of
P / datasets training samples each (16 test samples each, 8 evaluated), the
tiny model of configs/smoke.yaml, cap = ``--cap-fraction`` x P (later rounds
prune), budget = ``--budget`` x the pool. Every P runs in its own process
(``--child``) after the stream is prepared in another one, so the peak RSS
(getrusage) is the loop's own: the stream's source files are not counted.

Measured per P: seconds per stage (summed over rounds, from the stage
markers), peak RSS, and the run directory's size after every round
(without ``data/``, the prepared source files), split into the pool
(manifest + images), score stores, the rest of ``rounds/``, and adapters.
Stages are timed twice: wall seconds (the stage markers) and CPU seconds of
the process (getrusage between stages; one OMP thread), which a shared
machine's load disturbs far less. The growth exponent of a quantity q is the
least-squares slope of log q against log P.

Targets (issue 19): every stage's time exponent <= 1.1; peak RSS at the
largest P <= 1.5 x the smallest; the run directory bounded by the cap (its
pool and score stores stop growing once the cap is reached), not by what
was ingested.

The datasets are generated ones whose sources do not run out at these
sizes: counting and spatial scenes (random object layouts), number
comparisons (~1,000,000 distinct pairs) and object positions (~100,000
distinct scenes), so P = 160,000 with 4 datasets draws 40,000 of each.
(easy-vqa has ~5,000 shape questions and text_only ~15,000 questions: the
order the earlier results used, vqa_shape/counting/spatial/text_only, stops
near P = 20,000.) Compare only runs with the same order: the per-sample cost
differs by dataset.

Run: ``python -m eval.bench_loop_scale [--pools 10000 40000 160000]``; writes
eval/results/bench_loop_scale.json and two SVG figures next to it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "eval" / "results"
STAGES = ("ingest", "score", "select", "train", "prune", "eval", "report")
ORDER = ["counting", "spatial", "compare", "position"]  # generators whose sources do not run out


def overrides(pool: int, args) -> list[str]:
    per = pool // args.datasets
    return [f"runs_dir={args.work}", f"name=p{pool}", "stream.builtin=full",
            f"stream.builtin_config.order=[{','.join(ORDER[:args.datasets])}]",
            f"stream.builtin_config.full_train={per}", "stream.builtin_config.full_test=16",
            f"prune.cap={int(args.cap_fraction * pool)}", "select.budget.fraction=" + str(args.budget),
            f"score.shard_size={args.shard_size}", "eval.max_samples_per_task=8", *args.set]


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def du(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                pass
    return total


def sizes(run_dir: Path) -> dict[str, int]:
    """Bytes of the run directory (without data/, the prepared source files), by part."""
    rounds = run_dir / "rounds"
    stores = sum(du(p) for p in rounds.glob("*/score")) if rounds.exists() else 0
    out = {"pool_manifest": sum(p.stat().st_size for p in (run_dir / "pool").glob("pool.sqlite*")),
           "pool_images": du(run_dir / "pool" / "blobs"), "scores": stores,
           "rounds_other": du(rounds) - stores, "adapters": du(run_dir / "adapters")}
    out["total"] = sum(out.values()) + sum(du(run_dir / p) for p in ("metrics", "data_cards"))
    out.update(manifest_rows(run_dir / "pool" / "pool.sqlite"))
    return out


def manifest_rows(path: Path) -> dict[str, int]:
    """Rows of the pool's manifest: active and pruned samples in ``samples``, and ledger rows."""
    import sqlite3

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = dict(db.execute("SELECT status, COUNT(*) FROM samples GROUP BY status").fetchall())
        return {"rows_active": rows.get("active", 0), "rows_pruned": rows.get("pruned", 0),
                "rows_ledger": db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]}
    finally:
        db.close()


def child(args) -> None:
    """Prepare (``--prepare``) or run one pool size in this process; results as JSON to stdout's last line."""
    from lifelong.run_config import load_run_config

    cfg = load_run_config(ROOT / "configs" / "smoke.yaml", overrides(args.pool, args))
    run_dir = cfg.run_dir
    if args.prepare:
        from lifelong.data.stream import prepare_stream

        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        tmp = run_dir / "data.tmp"
        prepare_stream(tmp, cfg.stream.builtin, cfg.stream.seed, cfg=cfg.stream.builtin_config)
        os.replace(tmp, run_dir / "data")
        return
    from lifelong.loop import run

    per_round: list[dict] = []
    order = [(0, "setup")] + [(t, s) for t in range(1, args.datasets + 1) for s in STAGES]
    cpu: dict[str, float] = {s: 0.0 for s in STAGES}
    last = [cpu_seconds()]

    def after_stage() -> bool:  # polled after every stage (a fresh run: in ``order``)
        now = cpu_seconds()
        t, name = order[min(len(order) - 1, sum(1 for _ in run_dir.glob("rounds/*/*/done")) - 1)]
        if t > 0:
            cpu[name] += now - last[0]
        last[0] = now
        done = sum(1 for _ in run_dir.glob("rounds/*/report/done"))
        if done > len(per_round):
            per_round.append({"round": done, **sizes(run_dir),
                              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
        return False

    start = time.perf_counter()
    r = run(cfg, should_stop=after_stage)
    wall = time.perf_counter() - start
    seconds = {s: sum(r.stage_info(t, s).get("seconds", 0.0) for t in range(1, args.datasets + 1)) for s in STAGES}
    ingested = sum(r.stage_info(t, "ingest").get("added", 0) for t in range(1, args.datasets + 1))
    out = {"pool": args.pool, "cap": cfg.prune.cap, "ingested": ingested, "active": r.pool.count(),
           "wall_s": wall, "stage_cpu_s": cpu, "setup_s": r.stage_info(0, "setup").get("seconds", 0.0), "stage_s": seconds,
           "score_passes": [r.stage_info(t, "score").get("n") for t in range(1, args.datasets + 1)],
           "pruned": [r.stage_info(t, "prune").get("pruned") for t in range(1, args.datasets + 1)],
           "compacted": [r.stage_info(t, "prune").get("compacted") for t in range(1, args.datasets + 1)],
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "per_round": per_round}
    print(json.dumps(out))


def slope(xs, ys) -> float:
    xs, ys = np.log(np.asarray(xs, float)), np.log(np.maximum(np.asarray(ys, float), 1e-9))
    return float(np.polyfit(xs, ys, 1)[0]) if len(xs) >= 2 else float("nan")


def figures(results: list[dict], stem: Path) -> list[Path]:
    """Two SVG charts: log10 seconds per stage against log10 P; run-dir MiB after each round per P."""
    from lifelong.evaluation.dashboard import DashboardConfig, Series, line_chart

    cfg = DashboardConfig()
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    time_series = [Series(s, [(math.log10(r["pool"]), math.log10(max(r["stage_s"][s], 1e-3))) for r in results],
                          colors[i % len(colors)]) for i, s in enumerate(STAGES)]
    time_series.append(Series("peak RSS (log10 MiB)", [(math.log10(r["pool"]), math.log10(r["peak_rss_mib"]))
                                                       for r in results], "#000000", "6 3"))
    disk_series = []
    for i, r in enumerate(results):
        disk_series.append(Series(f"P={r['pool']}: run dir", [(x["round"], x["total"] / 2**20) for x in r["per_round"]],
                                  colors[i % len(colors)]))
        disk_series.append(Series(f"P={r['pool']}: pool+scores",
                                  [(x["round"], (x["pool_manifest"] + x["pool_images"] + x["scores"]) / 2**20)
                                   for x in r["per_round"]], colors[i % len(colors)], "6 3"))
    out = []
    for name, svg in (("time", line_chart("t", "log10 seconds per stage (sum over rounds) vs log10 pool size",
                                          time_series, cfg, x_label="log10 pool size", y_label="log10 s",
                                          x_integer=False)),
                      ("disk", line_chart("d", "run directory after each round (MiB)", disk_series, cfg,
                                          x_label="round", y_label="MiB"))):
        path = stem.with_name(f"{stem.name}_{name}.svg")
        path.write_text(svg)
        out.append(path)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pools", type=int, nargs="+", default=[10000, 40000, 160000])
    p.add_argument("--datasets", type=int, default=4, help="rounds (datasets of pool / datasets samples)")
    p.add_argument("--cap-fraction", type=float, default=0.5)
    p.add_argument("--budget", type=float, default=0.05, help="select.budget.fraction")
    p.add_argument("--shard-size", type=int, default=256)
    p.add_argument("--work", type=Path, default=Path("/tmp/bench_loop_scale"))
    p.add_argument("--out", type=Path, default=RESULTS / "bench_loop_scale.json")
    p.add_argument("--time-limit", type=float, default=3600, help="stop before a pool whose run would exceed it "
                   "(predicted from the last two at the measured exponent)")
    p.add_argument("--set", nargs="*", default=[], help="more run-config overrides")
    p.add_argument("--previous", type=Path, help="an earlier output whose results are fitted together with these")
    p.add_argument("--child", action="store_true")
    p.add_argument("--prepare", action="store_true")
    p.add_argument("--pool", type=int)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    results, skipped = [], []
    if args.previous:
        results = [r for r in json.loads(args.previous.read_text())["results"] if r["pool"] not in args.pools]
    # One thread per process: on a shared machine, CPU seconds then measure work, not spinning.
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    for pool in sorted(args.pools):
        if len(results) >= 2:
            k = slope([r["pool"] for r in results[-2:]], [r["wall_s"] for r in results[-2:]])
            predicted = results[-1]["wall_s"] * (pool / results[-1]["pool"]) ** max(k, 1.0)
            if predicted > args.time_limit:
                print(f"skipping P={pool}: predicted {predicted:.0f} s > --time-limit {args.time_limit:.0f} s")
                skipped.append({"pool": pool, "predicted_s": predicted})
                continue
        base = [sys.executable, __file__, "--child", "--pool", str(pool), "--datasets", str(args.datasets),
                "--cap-fraction", str(args.cap_fraction), "--budget", str(args.budget), "--shard-size",
                str(args.shard_size), "--work", str(args.work), "--set", *args.set]
        t0 = time.perf_counter()
        subprocess.run(base + ["--prepare"], check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        prep = time.perf_counter() - t0
        proc = subprocess.run(base, check=True, env=env, cwd=ROOT, capture_output=True, text=True)
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["prepare_s"] = prep
        results.append(res)
        last = res["per_round"][-1]
        print(f"P={pool:>7}: wall {res['wall_s']:7.1f} s, peak RSS {res['peak_rss_mib']:7.1f} MiB, run dir "
              f"{last['total'] / 2**20:7.1f} MiB (pool {(last['pool_manifest'] + last['pool_images']) / 2**20:.1f}, "
              f"scores {last['scores'] / 2**20:.1f}); active {res['active']} of {res['ingested']} ingested, "
              f"cap {res['cap']}; wall s " + " ".join(f"{s} {res['stage_s'][s]:.1f}" for s in STAGES)
              + "; CPU s " + " ".join(f"{s} {res['stage_cpu_s'][s]:.1f}" for s in STAGES), flush=True)
        if not args.set:
            shutil.rmtree(args.work / f"p{pool}", ignore_errors=True)
    results.sort(key=lambda r: r["pool"])
    pools = [r["pool"] for r in results]
    summary = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                   if k not in ("child", "prepare", "pool", "previous")},
        "results": results, "skipped": skipped,
        "time_exponent": {s: slope(pools, [r["stage_s"][s] for r in results]) for s in STAGES},
        "cpu_time_exponent": {s: slope(pools, [r["stage_cpu_s"][s] for r in results]) for s in STAGES},
        "rss_ratio_largest_to_smallest": results[-1]["peak_rss_mib"] / results[0]["peak_rss_mib"] if results else None,
        "rss_exponent": slope(pools, [r["peak_rss_mib"] for r in results]),
        "run_dir_bytes_per_capped_sample": [r["per_round"][-1]["total"] / r["cap"] for r in results],
        "run_dir_bytes_per_ingested_sample": [r["per_round"][-1]["total"] / r["ingested"] for r in results],
    }
    print("wall-time exponent per stage: " + ", ".join(f"{s} {v:.2f}" for s, v in summary["time_exponent"].items()))
    print("CPU-time exponent per stage:  " + ", ".join(f"{s} {v:.2f}" for s, v in summary["cpu_time_exponent"].items()))
    if results:
        print(f"peak RSS largest / smallest pool: {summary['rss_ratio_largest_to_smallest']:.2f} "
              f"(exponent {summary['rss_exponent']:.3f})")
        print("run dir after each round (MiB), per pool:")
        for r in results:
            print(f"  P={r['pool']:>7} cap {r['cap']:>7}: " + "  ".join(
                f"r{x['round']} {x['total'] / 2**20:.1f} (pool+scores "
                f"{(x['pool_manifest'] + x['pool_images'] + x['scores']) / 2**20:.1f})" for x in r["per_round"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    if results:
        for path in figures(results, args.out.with_suffix("")):
            print(f"figure: {path}")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
