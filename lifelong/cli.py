"""``lifelong`` command line: one subcommand per job, ``main(argv)`` callable from tests.

Heavy imports (torch, transformers) happen inside the commands that need them,
so ``lifelong --help`` and the pool commands start instantly.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

# name -> (help, add-arguments function, run function returning an exit code)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def register(name: str, help: str, setup, run) -> None:
    COMMANDS[name] = (help, setup, run)


def _pool_dir(args) -> Path:
    if getattr(args, "pool", None):
        return Path(args.pool)
    if getattr(args, "run", None):
        return Path(args.run) / "pool"
    raise SystemExit("error: give --pool DIR or --run RUN_DIR")


def _add_pool_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--pool", help="pool directory")
    g.add_argument("--run", help="run directory (its pool/ is used)")


# ---- ingest ---------------------------------------------------------------
def _setup_ingest(p):
    p.add_argument("paths", nargs="+", help="dataset files (.json/.jsonl/.parquet), LLaVA dataset folders, or save_to_disk dirs")
    _add_pool_args(p)
    p.add_argument("--name", help="dataset name (default: folder name or file stem)")
    p.add_argument("--split", help="split name (default: from the file name, else train)")
    p.add_argument("--format", choices=["llava", "messages", "hf"], help="force a format (default: detect)")
    p.add_argument("--image-root", help="folder image paths are relative to (default: the file's folder)")
    p.add_argument("--round", type=int, default=0, help="round number recorded as round_added")


def cmd_ingest(args) -> int:
    from lifelong.data.ingest import ingest, iter_dataset_files
    from lifelong.data.pool import Pool

    with Pool(_pool_dir(args)) as pool:
        for path in args.paths:
            for f in iter_dataset_files(Path(path)):
                dataset = args.name or (Path(path).name if Path(path).is_dir() else None)
                rep = ingest(pool, f, dataset=dataset, split=args.split, fmt=args.format,
                             round_added=args.round, image_root=args.image_root)
                print(rep.summary())
                for q in rep.quarantined[:5]:
                    print(f"  record {q['index']}" + (f" (id {q['id']})" if q["id"] is not None else "") + f": {q['reason']}")
                if len(rep.quarantined) > 5:
                    print(f"  ... {len(rep.quarantined) - 5} more")
    return 0


# ---- pool -----------------------------------------------------------------
def _setup_pool(p):
    p.add_argument("action", choices=["stats", "check", "ledger"], help="stats: counts; check: consistency; ledger: pruned samples")
    _add_pool_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_pool(args) -> int:
    from lifelong.data.pool import Pool

    with Pool(_pool_dir(args)) as pool:
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
                f"{r['round']:>3} {r['reason']:<10} {r['sample_id']}  cluster={r['cluster']} max_sim={r['max_sim']}" for r in rows))
    return 0


register("ingest", "ingest datasets into a pool (bad records go to a quarantine report)", _setup_ingest, cmd_ingest)
register("pool", "inspect a pool: stats, check, ledger", _setup_pool, cmd_pool)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifelong",
        description="Lifelong multimodal instruction tuning (Adapt-inf): ingest datasets as they arrive, "
        "select, train LoRA rounds, prune, evaluate forgetting, export adapters.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, setup, _) in COMMANDS.items():
        setup(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from lifelong.config import ConfigError

    _, _, fn = COMMANDS[args.command]
    try:
        return fn(args) or 0
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
