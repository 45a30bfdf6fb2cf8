"""``lifelong run CONFIG|RUN_DIR [key=value ...]``: a whole stream, one round per dataset, resumable."""
from __future__ import annotations


def setup(p) -> None:
    p.add_argument("config", help="run config YAML (configs/*.yaml) or an existing run directory")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, type-checked")
    p.add_argument("--force", action="store_true", help="resume a run directory even if its config differs")


def run(args) -> int:
    from lifelong.loop import run
    from lifelong.run_config import load_run_config

    cfg = load_run_config(args.config, args.overrides)
    args.resume = cfg.run_dir
    r = run(cfg, force=args.force)
    from lifelong.distributed import is_main

    if is_main():
        print(f"run directory: {r.dir}\ndashboard: {r.layout.dashboard}")
    return 0
