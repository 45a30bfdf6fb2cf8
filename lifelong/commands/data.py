"""``lifelong data prepare|check``: write the built-in offline stream; check a config's datasets before training."""
from __future__ import annotations

import argparse
import sys

from lifelong.commands import UsageError


def setup(p) -> None:
    p.add_argument("action", choices=["prepare", "check"],
                   help="prepare: write the built-in offline stream; check: count and validate every dataset "
                        "of a config before training (exit 1 when something is wrong)")
    p.add_argument("rest", nargs=argparse.REMAINDER,
                   help="prepare: --out DIR [--scale small|full] [--seed N] ...; check: CONFIG [key.sub=value ...]")


def run(args) -> int:
    if args.action == "check":
        return _data_check(args.rest)
    from lifelong.data.stream import main as prepare_main

    return prepare_main(args.rest) or 0


def _data_check(argv: list[str]) -> int:
    """``lifelong data check CONFIG [overrides]``: lifelong/data/check.py on every dataset of the config."""
    from lifelong.data.check import check_all, report, split_jobs
    from lifelong.run_config import load_run_config
    from lifelong.run_checks import with_default_test

    p = argparse.ArgumentParser(prog="lifelong data check", description="count and validate every dataset of a "
                                "config (records, expected counts, missing or unreadable images, records with no "
                                "answer) before training; exit 1 when something is wrong")
    p.add_argument("config", help="run config YAML (configs/streams/*.yaml) or a run directory")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides (data_root=DIR, ...)")
    p.add_argument("--jobs", type=int, default=1, help="splits checked at once, one process each (default 1)")
    a = p.parse_args(argv)
    cfg = load_run_config(a.config, a.overrides)
    if not cfg.stream.datasets:
        raise UsageError(f"{a.config} names no datasets (stream.datasets) to check",
                         "the built-in stream is generated and checked when a run writes it")
    jobs = []
    for e in cfg.stream.datasets:
        e = with_default_test(e, cfg.eval.split)
        jobs += split_jobs(e.name, e.train, e.test, e.images, e.format, e.expected, cfg.ingest, cfg.eval.split)
    print(f"checking {len(cfg.stream.datasets)} datasets (every record validated, every image decoded) ...",
          file=sys.stderr, flush=True)
    text, ok = report(check_all(jobs, a.jobs))
    print(text)
    return 0 if ok else 1
