"""``lifelong export RUN [--round N] --out DIR [--merge] [--base-model ID]``: a round's adapter (or merged
weights) with its model card and lineage."""
from __future__ import annotations

from pathlib import Path


def setup(p) -> None:
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("--round", type=int, default=None, help="round whose adapter to export (default: latest)")
    p.add_argument("--out", type=Path, required=True, help="new or empty output directory")
    p.add_argument("--merge", action="store_true", help="write merged full weights instead of the adapter")
    p.add_argument("--base-model", default=None, help="base_model_name_or_path to record (default: from the run)")


def run(args) -> int:
    from contextlib import nullcontext

    from lifelong.export import export
    from lifelong.runlock import run_lock

    # An ExportError is a user error: lifelong.cli reports it in one line with exit code 2.
    with run_lock(args.run) if args.merge and args.run.is_dir() else nullcontext():  # merging replays the model
        out = export(args.run, args.out, round=args.round, merge=args.merge, base_model=args.base_model)
    print(f"exported {'merged weights' if args.merge else 'adapter'} to {out}")
    return 0
