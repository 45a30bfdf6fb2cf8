"""Benchmark: bytes a pruned sample costs in the pool's manifest, before and after its row is purged.

The built-in stream's samples (``--datasets``, ``--per`` training samples
each, written by ``prepare_stream`` and ingested through the real path) fill
a pool; three quarters are pruned in round 2 (ledger rows, conversations and
images gone, the rows kept for the round's data card), then purged (the rows
leave ``samples``, the ledger stays). After each step the manifest is
VACUUMed, and the bytes per pruned sample are the manifest's size minus that
of a pool holding only the kept samples, divided by the number pruned.

Run: ``python -m eval.bench_pool_purge``; writes eval/results/bench_pool_purge.json.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "eval" / "results"


def vacuumed_bytes(pool) -> int:
    pool.compact(min_fraction=0.0)
    return pool.file_bytes()


def main(argv=None) -> int:
    from lifelong.data.ingest import IngestConfig, ingest
    from lifelong.data.pool import Pool, PruneRecord
    from lifelong.data.stream import prepare_stream
    from lifelong.data.stream.config import StreamConfig

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["counting", "spatial", "compare", "position", "digits"])
    p.add_argument("--per", type=int, default=1000, help="training samples per dataset")
    p.add_argument("--out", type=Path, default=RESULTS / "bench_pool_purge.json")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = StreamConfig(order=list(args.datasets), full_train=args.per, full_test=1)
        infos = prepare_stream(tmp / "data", "full", 0, cfg=cfg)
        files = [tmp / "data" / i.train for i in infos]
        with Pool(tmp / "pool") as pool:
            for f in files:
                ingest(pool, f, dataset=f.parent.name, split="train", round_added=1, cfg=IngestConfig(progress=False))
            ids = pool.ids()
            pruned = [i for k, i in enumerate(ids) if k % 4]
            kept = [i for k, i in enumerate(ids) if k % 4 == 0]
            full = vacuumed_bytes(pool)
            pool.prune([PruneRecord(i, 2, "semdedup_duplicate", cluster=k % 8, max_sim=0.97)
                        for k, i in enumerate(pruned)])
            tombstones = vacuumed_bytes(pool)
            pool.purge(before_round=3)
            purged = vacuumed_bytes(pool)
            assert pool.count() == len(kept) and pool.check() == [] and len(pool.ledger()) == len(pruned)
            samples = pool.get(kept)
        with Pool(tmp / "ref") as ref:  # the kept samples alone, never any pruning
            ing = ref.new_ingest("ref", "llava", "ref", "train", 1)
            with ref.transaction():
                for s in samples:
                    ref.insert(s, s.content_key(), 1, ing)
            active_only = vacuumed_bytes(ref)
    out = {
        "config": {"datasets": args.datasets, "per": args.per},
        "samples": len(ids), "pruned": len(pruned), "kept": len(kept),
        "manifest_bytes": {"all_active": full, "pruned_rows_kept": tombstones, "pruned_rows_purged": purged,
                           "kept_only": active_only},
        "bytes_per_active_sample": active_only / len(kept),
        "bytes_per_pruned_sample_before_purge": (tombstones - active_only) / len(pruned),
        "bytes_per_pruned_sample_after_purge": (purged - active_only) / len(pruned),
    }
    print(f"{len(ids)} samples, {len(pruned)} pruned: manifest bytes per active sample "
          f"{out['bytes_per_active_sample']:.0f}; per pruned sample {out['bytes_per_pruned_sample_before_purge']:.0f}"
          f" with its row kept, {out['bytes_per_pruned_sample_after_purge']:.0f} after the purge (ledger only)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
