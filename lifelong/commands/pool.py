"""``lifelong pool stats|check|ledger``: inspect a pool (never creates one); the --pool/--run arguments."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from lifelong.commands import UsageError
from lifelong.layout import RunLayout


def pool_dir(args) -> Path:
    if getattr(args, "pool", None):
        return Path(args.pool)
    if getattr(args, "run", None):
        return RunLayout(args.run).pool
    raise UsageError("give --pool DIR or --run RUN_DIR")


def open_pool(args):
    """The existing pool that ``--pool``/``--run`` names (readers never create one)."""
    from lifelong.data.pool import Pool

    if getattr(args, "run", None) and not RunLayout(args.run).config.exists():
        raise UsageError(f"{args.run} is not a run directory (no config.yaml)",
                         "check the path; 'ls runs/' lists the runs")
    path = pool_dir(args)
    if not (path / "pool.sqlite").is_file():
        raise UsageError(f"no pool at {path} (no pool.sqlite)", "check the path, or make one with 'lifelong ingest'")
    return Pool(path, create=False)


def add_pool_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--pool", help="pool directory")
    g.add_argument("--run", help="run directory (its pool/ is used)")


def setup(p) -> None:
    p.add_argument("action", choices=["stats", "check", "ledger"], help="stats: counts; check: consistency; ledger: pruned samples")
    add_pool_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    with open_pool(args) as pool:
        if args.action == "stats":
            rows = pool.stats()
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                print(f"{'dataset':<20} {'task':<20} {'split':<8} {'status':<8} {'count':>8}")
                for r in rows:
                    print(f"{r['dataset']:<20} {r['task']:<20} {r['split']:<8} {r['status']:<8} {r['count']:>8}")
                print(f"active train samples: {pool.count()}   images stored: {pool.n_blobs()}")
        elif args.action == "check":
            problems = pool.check()
            for p in problems:
                print(p)
            print("pool is consistent" if not problems else f"{len(problems)} problem(s)")
            return 1 if problems else 0
        else:
            rows = pool.ledger()
            print(json.dumps(rows, indent=2) if args.json else "\n".join(
                f"{r['round']:>3} {r['reason']:<10} {r['sample_id']}  cluster={r['cluster']} max_sim={r['max_sim']}"
                + (f" duplicate_of={r['duplicate_of']}" if r["duplicate_of"] else "") for r in rows))
    return 0
