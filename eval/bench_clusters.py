"""Benchmark: pseudo-skill cluster quality on the built-in stream (NMI against the true tasks).

The train splits of the built-in ``full`` stream (or a seeded subset of
``--per-task`` samples of each task) go through the scoring pass of the
demo's model settings (``configs/demo.yaml``: offline default model, the base
adapter of round 0), and the sketches are clustered with
``lifelong.selection.cluster.cluster``, K = the number of tasks and automatic
K (silhouette over ``--k-range``). The score is sklearn's
``normalized_mutual_info_score`` between cluster labels and task labels
(target >= 0.7), averaged over ``--cluster-seeds`` k-means seeds; the
mean-pooled hidden-state embeddings that the same pass returns are clustered
the same way for comparison.

Sketch layer variants (``--variants [-1] [-1,-2] [-1,-2,-3,-4]``) come from ONE
pass: per-sample gradients of the union of the variants' layers are taken once
and each variant keeps its own layers' columns (in the order the scorer uses)
and projects them with its own seeded projector: exactly the sketch a scoring
pass with that ``score.sketch.layers`` writes. The cost of each variant is
timed separately with its own scoring pass (sketch only) on a few batches.

Run: ``python -m eval.bench_clusters [--per-task 30] [--variants '[-1]' '[-1,-2]']``;
prints a table and writes eval/results/bench_clusters.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import tempfile
import time
from pathlib import Path

from eval import bench_sketch

RESULTS = Path(__file__).resolve().parent / "results"
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
TARGET_NMI = 0.7


def per_task_subset(samples, per_task: int, seed: int):
    """Up to ``per_task`` samples of each task, drawn with ``seed``, in pool order (0 = all)."""
    import numpy as np

    if per_task <= 0:
        return list(samples)
    by_task: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_task.setdefault(s.task, []).append(i)
    rng = np.random.default_rng(seed)
    keep = []
    for task in sorted(by_task):
        idx = by_task[task]
        keep += [idx[j] for j in rng.permutation(len(idx))[:per_task]]
    return [samples[i] for i in sorted(keep)]


class _Capture:
    """Stands in for the scorer's projector: keeps the flat per-sample gradients, projects nothing."""

    def __init__(self, out_dim: int):
        self.out_dim = out_dim
        self.flat = None

    def project(self, flat):
        import torch

        self.flat = flat
        return torch.zeros(flat.shape[0], self.out_dim, dtype=flat.dtype)


def variant_columns(names: list[str], dims: list[int], layers: set[int]) -> list[int]:
    """Columns of the union's flat gradient that belong to decoder ``layers`` (module order kept)."""
    cols, start = [], 0
    for name, d in zip(names, dims):
        layer = int(re.search(r"\.layers\.(\d+)\.", name).group(1))
        if layer in layers:
            cols.extend(range(start, start + d))
        start += d
    return cols


def sketch_variants(loaded, rc, samples, image_loader, variants: list[list[int]], cache_bytes: int, progress=True):
    """One scoring pass -> ({variant: (N, d) fp16 sketches}, (N, H) fp16 embeddings, {variant: grad dim})."""
    import torch
    from tqdm import tqdm

    from lifelong.selection.projection import RademacherProjector, normalize_fp16
    from lifelong.selection.score import Scorer

    n_layers = len(loaded.backend.decoder(loaded.base).layers)
    union = sorted({i % n_layers for v in variants for i in v})
    sk = rc.score.sketch
    cfg = dataclasses.replace(rc.score, experts=["grand"], sketch=dataclasses.replace(sk, layers=union))
    scorer = Scorer(loaded, cfg, image_loader)
    capture = _Capture(sk.projection.out_dim)
    scorer.projector = capture
    names = list(scorer.grads.modules)
    dims = [m.weight.numel() for m in scorer.grads.modules.values()]
    cols, projectors = {}, {}
    for v in variants:
        key = ",".join(map(str, v))
        cols[key] = torch.tensor(variant_columns(names, dims, {i % n_layers for i in v}))
        projectors[key] = RademacherProjector(len(cols[key]), sk.projection.out_dim, sk.projection.seed, sk.projection.block_rows, cache_bytes)
    sketches = {k: [] for k in cols}
    embeds = []
    try:
        for b in tqdm(range(0, len(samples), sk.batch_size), desc="score", disable=not progress, leave=False):
            _, emb, _ = scorer.score_batch(samples[b:b + sk.batch_size])
            embeds.append(emb)
            for k, c in cols.items():
                sketches[k].append(normalize_fp16(projectors[k].project(capture.flat[:, c])).cpu())
    finally:
        scorer.close()
    return ({k: torch.cat(v).numpy() for k, v in sketches.items()}, torch.cat(embeds).numpy(),
            {k: len(c) for k, c in cols.items()})


def variant_cost(loaded, rc, samples, image_loader, layers: list[int], batches: int) -> dict:
    """Seconds per sample of a sketch-only scoring pass with ``layers`` (after one warm-up batch)."""
    from lifelong.selection.score import Scorer

    sk = rc.score.sketch
    cfg = dataclasses.replace(rc.score, experts=["grand"], sketch=dataclasses.replace(sk, layers=layers))
    scorer = Scorer(loaded, cfg, image_loader)
    bs = sk.batch_size
    try:
        scorer.score_batch(samples[:bs])  # warm-up; fills the projection cache when it fits
        chunk = samples[bs:bs * (batches + 1)]
        t0, c0 = time.perf_counter(), time.process_time()
        for b in range(0, len(chunk), bs):
            scorer.score_batch(chunk[b:b + bs])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        scorer.close()
    return {"samples": len(chunk), "samples_per_s": round(len(chunk) / wall, 3),
            "samples_per_cpu_s": round(len(chunk) / cpu, 3), "grad_dim": scorer.grads.dim,
            "projection_cached": bool(scorer.projector._cache)}


def nmi_report(x, tasks: list[str], k: int, k_range: list[int], seeds: list[int]) -> dict:
    """NMI of clusters of rows x vs task labels: fixed K and auto-K, over k-means seeds."""
    import numpy as np
    from sklearn.metrics import normalized_mutual_info_score

    from lifelong.selection.cluster import ClusterConfig, cluster

    names = sorted(set(tasks))
    truth = np.array([names.index(t) for t in tasks])
    out = {}
    for tag, kk in (("fixed_k", k), ("auto_k", None)):
        nmis, ks, t0 = [], [], time.perf_counter()
        for seed in seeds:
            res = cluster(x, ClusterConfig(k=kk, k_range=k_range, seed=seed))
            nmis.append(float(normalized_mutual_info_score(truth, res.labels)))
            ks.append(res.k)
        out[tag] = {"nmi_mean": round(float(np.mean(nmis)), 4), "nmi_min": round(min(nmis), 4),
                    "nmi_max": round(max(nmis), 4), "k": ks, "seconds": round(time.perf_counter() - t0, 2)}
    # where each task lands (fixed K, first seed): the share of a task in its largest cluster
    res = cluster(x, ClusterConfig(k=k, seed=seeds[0]))
    out["task_purity"] = {t: round(float(np.bincount(res.labels[truth == i]).max() / (truth == i).sum()), 3)
                          for i, t in enumerate(names)}
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-task", type=int, default=30, help="samples per task (0 = every train sample)")
    p.add_argument("--variants", nargs="+", default=["[-1]", "[-1,-2]", "[-1,-2,-3,-4]"],
                   help="sketch layer sets as '[i,j,...]' decoder indices, negative from the end (must have LoRA)")
    p.add_argument("--k-range", type=int, nargs="+", default=[3, 4, 5, 6, 7, 8, 10, 12, 16],
                   help="candidate K of the automatic choice")
    p.add_argument("--cluster-seeds", type=int, default=5, help="k-means seeds averaged")
    p.add_argument("--cost-batches", type=int, default=2, help="timed batches per variant's cost (0 = skip)")
    p.add_argument("--projection-cache-mb", type=int, default=1024,
                   help="projection cache of the variants' projectors (this benchmark only)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (0 = torch's default)")
    p.add_argument("--config", type=Path, default=DEMO_CONFIG)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--scale", choices=["small", "full"], default="full")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path, default=None, help="keep the prepared stream and pool here (default: temp)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS / "bench_clusters.json")
    args = p.parse_args(argv)

    bs = bench_sketch
    variants = [[int(i) for i in v.strip("[] ").split(",")] for v in args.variants]
    with tempfile.TemporaryDirectory(prefix="bench-clusters-") as tmp:
        data = args.data or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        pool = bs.stream_pool(data, args.scale, args.seed)
        loaded, rc = bs.load_bench_model(args.config, args.overrides, args.threads or None)
        samples = per_task_subset(pool.samples(), args.per_task, args.seed)
        tasks = [s.task for s in samples]
        feat_s = bs.cache_vision_features(loaded, samples, pool.load_image)
        t0 = time.perf_counter()
        sketches, embeds, dims = sketch_variants(loaded, rc, samples, pool.load_image, variants,
                                                 args.projection_cache_mb * 2**20, not args.no_progress)
        pass_s = time.perf_counter() - t0
        costs = {}
        if args.cost_batches > 0:
            for v in variants:
                costs[",".join(map(str, v))] = variant_cost(loaded, rc, samples, pool.load_image, v,
                                                            args.cost_batches)
        pool.close()

    k = len(set(tasks))
    seeds = list(range(args.cluster_seeds))
    rows = {}
    for key, x in sketches.items():
        rows[f"sketch[{key}]"] = {"grad_dim": dims[key], **nmi_report(x, tasks, k, args.k_range, seeds),
                                  "cost": costs.get(key)}
    rows["pooled_hidden"] = nmi_report(embeds, tasks, k, args.k_range, seeds)
    sketch_rows = {n: r for n, r in rows.items() if n.startswith("sketch")}
    best = max(sketch_rows, key=lambda n: sketch_rows[n]["fixed_k"]["nmi_mean"])
    default_key = f"sketch[{','.join(map(str, rc.score.sketch.layers))}]"
    result = {
        "config": str(args.config), "overrides": args.overrides,
        "model": {"lm": rc.model.composed.lm, "vision": rc.model.composed.vision, "lora_layers": loaded.lora_layers},
        "adapter": "base (round 0: fresh LoRA, B = 0)",
        "samples": len(samples), "per_task": args.per_task, "tasks": {t: tasks.count(t) for t in sorted(set(tasks))},
        "k_fixed": k, "k_range": args.k_range, "cluster_seeds": seeds,
        "vision_features_s": round(feat_s, 1), "scoring_pass_s": round(pass_s, 1),
        "results": rows, "best_sketch_variant": best, "target_nmi": TARGET_NMI,
        "target_met": {n: r["fixed_k"]["nmi_mean"] >= TARGET_NMI for n, r in sketch_rows.items()},
        "default_variant": default_key,
    }
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


def print_table(r: dict) -> None:
    print(f"{r['samples']} samples of {len(r['tasks'])} tasks, K = {r['k_fixed']} and auto-K over {r['k_range']}, "
          f"NMI mean [min, max] over {len(r['cluster_seeds'])} k-means seeds")
    print(f"{'embedding':<26}{'dim':>8}{'NMI fixed K':>24}{'NMI auto-K':>24}{'auto K':>16}{'samples/s':>11}")
    for name, row in r["results"].items():
        f, a = row["fixed_k"], row["auto_k"]
        cost = row.get("cost") or {}
        print(f"{name:<26}{row.get('grad_dim', '-'):>8}{_fmt(f):>24}{_fmt(a):>24}{str(sorted(set(a['k']))):>16}{cost.get('samples_per_s', '-'):>11}")
    print(f"best sketch variant (fixed K): {r['best_sketch_variant']}; target NMI >= {r['target_nmi']}: "
          f"{r['target_met']}")
    for name, row in r["results"].items():
        print(f"  {name} task purity (fixed K): {row['task_purity']}")


def _fmt(x: dict) -> str:
    return f"{x['nmi_mean']:.3f} [{x['nmi_min']:.3f}, {x['nmi_max']:.3f}]"


if __name__ == "__main__":
    main()
