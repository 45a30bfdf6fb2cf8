"""Benchmark: cluster-wise SemDeDup of 1,000,000 synthetic 384-dim embeddings.

Data: ``topics`` random unit directions; every base embedding is a topic plus
isotropic noise of the same norm (cos to its topic ~0.71, to another sample of
its topic ~0.5). ``dup_fraction`` of the rows are planted near-duplicates of
random base rows (noise of norm ``dup_noise``, cos ~0.995), placed at random
positions. Pipeline timed: pruning's own partition (lifelong.pruning.partition: seeded spherical
k-means with k = N / ``--cluster-size``) -> the table of
each sample's most similar earlier samples in its cluster -> epsilon mode and
count mode (cap = N - planted).

Recall = share of planted pairs with at least one member removed; precision =
share of removed rows that belong to a planted pair. Peak memory = the
process's max resident set size (getrusage), which includes the data.

Count mode removes redundancy first (one global threshold), so at cap = N -
planted it should remove one member of (almost) every planted pair; "both"
counts the pairs of which it removed both members (should be 0).

Targets (issues 9, 18): <= 120 s, <= 6 GiB, recall >= 0.95 in both modes, on 2 cores.
Run: ``python -m eval.bench_prune [--n 1000000]``; writes eval/results/bench_prune.json.
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from lifelong.pruning.partition import PruneClusterConfig, partition
from lifelong.pruning.semdedup import PruneConfig, max_sim_table, prune_by_count, prune_by_epsilon

RESULTS = Path(__file__).resolve().parent / "results"


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def make_data(n: int, dim: int, topics: int, dup_fraction: float, dup_noise: float, seed: int,
              chunk: int = 100_000):
    """Unit embeddings (n, dim) float32 and planted pairs (P, 2) [original, copy] of row indices."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    n_dup = int(n * dup_fraction)
    n_base = n - n_dup
    perm = rng.permutation(n)  # row of the i-th generated sample
    x = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n_base, chunk):
        e = min(s + chunk, n_base)
        rows = centres[rng.integers(0, topics, e - s)]
        rows += rng.standard_normal((e - s, dim), dtype=np.float32) / np.sqrt(dim)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        x[perm[s:e]] = rows
    originals = perm[rng.choice(n_base, n_dup, replace=False)]
    copies = perm[n_base:]
    for s in range(0, n_dup, chunk):
        e = min(s + chunk, n_dup)
        rows = x[originals[s:e]] + dup_noise * rng.standard_normal((e - s, dim), dtype=np.float32) / np.sqrt(dim)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        x[copies[s:e]] = rows
    return x, np.stack([originals, copies], axis=1)


def score(removed: np.ndarray, pairs: np.ndarray, n: int) -> dict:
    mask = np.zeros(n, dtype=bool)
    mask[removed] = True
    hit = mask[pairs[:, 0]] | mask[pairs[:, 1]]
    in_pair = np.zeros(n, dtype=bool)
    in_pair[pairs.ravel()] = True
    both = mask[pairs[:, 0]] & mask[pairs[:, 1]]
    return {"removed": int(len(removed)), "recall": float(hit.mean()), "both_removed": int(both.sum()),
            "precision": float(in_pair[removed].mean()) if len(removed) else 1.0}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--topics", type=int, default=2000)
    ap.add_argument("--cluster-size", type=int, default=PruneClusterConfig.cluster_size)
    ap.add_argument("--branching", type=int, default=None, help="tree partition of this fan-out (default: flat)")
    ap.add_argument("--dup-fraction", type=float, default=0.02)
    ap.add_argument("--dup-noise", type=float, default=0.1)
    ap.add_argument("--epsilon", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_prune.json")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    x, pairs = make_data(args.n, args.dim, args.topics, args.dup_fraction, args.dup_noise, args.seed)
    t_data = time.perf_counter() - t0

    t0 = time.perf_counter()
    pcfg = PruneConfig(epsilon=args.epsilon,
                       cluster=PruneClusterConfig(cluster_size=args.cluster_size, branching=args.branching,
                                                   seed=args.seed))
    clusters = partition(x, pcfg.cluster)
    t_cluster = time.perf_counter() - t0

    t0 = time.perf_counter()
    table = max_sim_table(x, clusters.labels, clusters.centroids, pcfg)
    t_table = time.perf_counter() - t0

    t0 = time.perf_counter()
    eps = prune_by_epsilon(table, args.epsilon, x)
    t_eps = time.perf_counter() - t0
    t0 = time.perf_counter()
    cap = args.n - len(pairs)
    cnt = prune_by_count(table, cap, args.epsilon, x)
    t_count = time.perf_counter() - t0

    same_cluster = float((clusters.labels[pairs[:, 0]] == clusters.labels[pairs[:, 1]]).mean())
    result = {
        "n": args.n, "dim": args.dim, "clusters": clusters.k,
        "largest_cluster": int(np.bincount(clusters.labels).max()), "planted_pairs": int(len(pairs)),
        "planted_pairs_in_same_cluster": same_cluster,
        "seconds": {"data": round(t_data, 2), "cluster": round(t_cluster, 2), "max_sim": round(t_table, 2),
                    "decide_epsilon": round(t_eps, 2), "decide_count": round(t_count, 2),
                    "dedup_total_count_mode": round(t_cluster + t_table + t_count, 2)},
        "peak_rss_gib": round(peak_rss_gib(), 3),
        "epsilon_mode": {"epsilon": args.epsilon, **score(eps.index, pairs, args.n)},
        "count_mode": {"cap": cap, **score(cnt.index, pairs, args.n)},
        "targets": {"seconds": 120, "peak_gib": 6, "recall": 0.95},
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
