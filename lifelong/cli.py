"""``lifelong`` command line: one subcommand per job, ``main(argv)`` callable from tests.

Heavy imports (torch, transformers) happen inside the commands that need them,
so ``lifelong --help`` and the pool commands start instantly.

Failures are one line, ``error: ...``, often followed by ``hint: ...`` (the
command that continues or undoes), and an exit code that says which kind
(README, "Troubleshooting"): :data:`EXIT_USER` for a command, config or
dataset to fix, :data:`lifelong.runlock.EXIT_LOCKED` for a run in use,
:data:`EXIT_DISK_FULL`, :data:`EXIT_INTERRUPTED` for Ctrl-C; ``| head``
closing the pipe ends the command quietly. Anything else is a bug and shows
its traceback; ``lifelong --debug COMMAND`` (or ``LIFELONG_DEBUG=1``) shows
tracebacks for every failure.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

from lifelong.layout import RunLayout

EXIT_USER = 2  # a command, config value, path or dataset to fix; nothing was written
EXIT_DISK_FULL = 28  # the disk filled up (28 = ENOSPC); finished work is kept, resume after freeing space
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT); finished work is kept
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (``| head``): 128 + SIGPIPE, as shell tools end


class UsageError(Exception):
    """A command line that cannot work; ``hint`` says what to do instead."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


# name -> (help, add-arguments function, run function returning an exit code)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def register(name: str, help: str, setup, run) -> None:
    COMMANDS[name] = (help, setup, run)


def _pool_dir(args) -> Path:
    if getattr(args, "pool", None):
        return Path(args.pool)
    if getattr(args, "run", None):
        return RunLayout(args.run).pool
    raise UsageError("give --pool DIR or --run RUN_DIR")


def _open_pool(args):
    """The existing pool that ``--pool``/``--run`` names (readers never create one)."""
    from lifelong.data.pool import Pool

    if getattr(args, "run", None) and not RunLayout(args.run).config.exists():
        raise UsageError(f"{args.run} is not a run directory (no config.yaml)",
                         "check the path; 'ls runs/' lists the runs")
    path = _pool_dir(args)
    if not (path / "pool.sqlite").is_file():
        raise UsageError(f"no pool at {path} (no pool.sqlite)", "check the path, or make one with 'lifelong ingest'")
    return Pool(path, create=False)


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
    from lifelong.data.ingest import detect_format_safe, ingest, iter_dataset_files, record_place
    from lifelong.data.pool import Pool

    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UsageError(f"{missing[0]} does not exist{more}")
    for p in args.paths:
        if Path(p).is_dir() and args.format is None and detect_format_safe(Path(p)) != "hf" \
                and not list(iter_dataset_files(Path(p))):
            raise UsageError(f"{p}: a folder with no train/test/val file (.json, .jsonl, .parquet) and not a "
                             "save_to_disk dataset")
    with Pool(_pool_dir(args)) as pool:
        for path in args.paths:
            for f in iter_dataset_files(Path(path)):
                dataset = args.name or (Path(path).name if Path(path).is_dir() else None)
                rep = ingest(pool, f, dataset=dataset, split=args.split, fmt=args.format,
                             round_added=args.round, image_root=args.image_root)
                print(rep.summary())
                for q in rep.quarantined[:5]:
                    print(f"  {record_place(q)}" + (f" (id {q['id']})" if q["id"] is not None else "")
                          + f": {q['reason']}")
                if len(rep.quarantined) > 5:
                    print(f"  ... {len(rep.quarantined) - 5} more")
    return 0


# ---- pool -----------------------------------------------------------------
def _setup_pool(p):
    p.add_argument("action", choices=["stats", "check", "ledger"], help="stats: counts; check: consistency; ledger: pruned samples")
    _add_pool_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_pool(args) -> int:
    with _open_pool(args) as pool:
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


register("ingest", "ingest datasets into a pool (bad records go to a quarantine report)", _setup_ingest, cmd_ingest)
register("pool", "inspect a pool: stats, check, ledger", _setup_pool, cmd_pool)


# ---- run / round ----------------------------------------------------------------
def _setup_run(p):
    p.add_argument("config", help="run config YAML (configs/*.yaml) or an existing run directory")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, type-checked")
    p.add_argument("--force", action="store_true", help="resume a run directory even if its config differs")


def cmd_run(args) -> int:
    from lifelong.loop import run
    from lifelong.run_config import load_run_config

    cfg = load_run_config(args.config, args.overrides)
    args.resume = cfg.run_dir
    r = run(cfg, force=args.force)
    from lifelong.distributed import is_main

    if is_main():
        print(f"run directory: {r.dir}\ndashboard: {r.layout.dashboard}")
    return 0


def _setup_round(p):
    p.add_argument("--dataset",
                   help="the newly arrived dataset: a folder (train/test files, a dataset.yaml or a save_to_disk "
                        "dataset) or a training file")
    p.add_argument("--drop", metavar="NAME",
                   help="instead: take back dataset NAME, added by round/watch, whose round has not trained")
    p.add_argument("--run", required=True, help="existing run directory")
    p.add_argument("--name", help="dataset name (default: from dataset.yaml, else the folder name or file stem)")
    p.add_argument("--test", default=None, help="its held-out split (default: the folder's test file, if any)")
    p.add_argument("--metric", default=None, help="answer metric of its task (default: exact_match)")


def cmd_round(args) -> int:
    import copy

    from lifelong.arrivals import append_entry, check, drop, resolve
    from lifelong.loop import run
    from lifelong.run_config import check_run_config, load_run_config
    from lifelong.runlock import run_lock

    run_dir = Path(args.run)
    if (args.dataset is None) == (args.drop is None):
        raise UsageError("give --dataset PATH (a new round) or --drop NAME (take one back)")
    if not RunLayout(run_dir).config.exists():
        raise UsageError(f"{run_dir} is not a run directory (no config.yaml)", "start one with 'lifelong run CONFIG'")
    with run_lock(run_dir):
        cfg = load_run_config(run_dir)
        if args.drop is not None:
            drop(cfg, args.drop)
            return 0
        entry = resolve(args.dataset, args.name)
        if args.test is not None:
            entry.test = str(Path(args.test).absolute()) if args.test else ""
        entry.metric = args.metric or entry.metric
        check(entry, cfg)
        whole = copy.deepcopy(cfg)
        whole.stream.datasets.append(entry)
        check_run_config(whole)  # the run as it will be, checked before config.yaml changes
        append_entry(cfg, entry)
        args.resume = run_dir
        run(cfg)
    return 0


def _setup_watch(p):
    p.add_argument("--run", required=True, help="run directory (created from --config when new)")
    p.add_argument("--inbox", help="folder to watch for arriving datasets (default: RUN/inbox)")
    p.add_argument("--config", help="run config YAML, to start a new run directory")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides of --config")
    p.add_argument("--poll", type=float, default=5.0, help="seconds between looks into the inbox")
    p.add_argument("--stable-after", type=float, default=None,
                   help="also take a folder without a READY file once its files are unchanged this many seconds")
    p.add_argument("--once", action="store_true", help="take what is ready, train it, and exit when the inbox is empty")


def cmd_watch(args) -> int:
    from lifelong.arrivals import watch

    args.resume = Path(args.run)
    watch(args.run, args.inbox, args.config, args.overrides, args.poll, args.stable_after, args.once)
    return 0


def _setup_data(p):
    p.add_argument("action", choices=["prepare", "check"],
                   help="prepare: write the built-in offline stream; check: count and validate every dataset "
                        "of a config before training (exit 1 when something is wrong)")
    p.add_argument("rest", nargs=argparse.REMAINDER,
                   help="prepare: --out DIR [--scale small|full] [--seed N] ...; check: CONFIG [key.sub=value ...]")


def cmd_data(args) -> int:
    if args.action == "check":
        return _data_check(args.rest)
    from lifelong.data.stream import main as prepare_main

    return prepare_main(args.rest) or 0


def _data_check(argv: list[str]) -> int:
    """``lifelong data check CONFIG [overrides]``: lifelong/data/check.py on every dataset of the config."""
    from lifelong.data.check import check_all, report, split_jobs
    from lifelong.run_config import load_run_config, with_default_test

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


def _passthrough(p):
    p.add_argument("rest", nargs=argparse.REMAINDER, help="see the subcommand's --help")


def _delegate(module: str):
    def run(args) -> int:
        import importlib

        return importlib.import_module(module).main(args.rest) or 0

    return run


register("run", "run a lifelong stream: one round per dataset, resumable", _setup_run, cmd_run)
register("round", "add one newly arrived dataset to an existing run and train its round", _setup_round, cmd_round)
register("watch", "task-stream manager: turn dataset folders dropped into an inbox into rounds of a live run",
         _setup_watch, cmd_watch)
register("data", "built-in offline task stream", _setup_data, cmd_data)
register("select", "score a pool with a model and select samples (writes ids, clusters, experts, scores)",
         _passthrough, _delegate("lifelong.selection.command"))
register("train", "train one LoRA round on the samples of a selection (writes a PEFT adapter)",
         _passthrough, _delegate("lifelong.training.command"))
register("eval", "re-evaluate a saved adapter of a run on every task", _passthrough, _delegate("lifelong.evaluation.command"))
register("dashboard", "write the self-contained HTML dashboard of one or more runs", _passthrough,
         _delegate("lifelong.evaluation.dashboard"))
register("export", "export a round's adapter (PEFT), model card and lineage", _passthrough, _delegate("lifelong.export"))
register("score", "score a JSONL file of answers with any answer metric", _passthrough, _delegate("lifelong.evaluation.score_command"))
register("suite", "evaluation suites: add a fixed test set to a run (evaluated every round, earlier rows back-filled)", _passthrough, _delegate("lifelong.evaluation.suites"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifelong",
        description="Lifelong multimodal instruction tuning (Adapt-inf): ingest datasets as they arrive, "
        "select, train LoRA rounds, prune, evaluate forgetting, export adapters.",
        epilog="Exit codes: 0 done, 1 check found problems, 2 something to fix (the message says what), "
        f"3 run in use by another writer, {EXIT_DISK_FULL} disk full, {EXIT_INTERRUPTED} interrupted (Ctrl-C). "
        "--debug (before COMMAND) shows tracebacks.",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of any failure")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, setup, _) in COMMANDS.items():
        setup(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("LIFELONG_DEBUG", "") not in ("", "0")
    if argv[:1] == ["--debug"]:
        debug, argv = True, argv[1:]
    if argv and argv[0] in COMMANDS and COMMANDS[argv[0]][1] is _passthrough:
        # The subcommand parses its own arguments: argparse's REMAINDER would
        # refuse ones that start with an option (``lifelong eval --run DIR``).
        args = argparse.Namespace(command=argv[0], rest=argv[1:])
    else:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
    _, _, fn = COMMANDS[args.command]
    try:
        return fn(args) or 0
    except BaseException as e:  # noqa: BLE001 - sorted into user errors and bugs by _failure
        code = _failure(e, args, debug)
        if code is None:
            raise
        return code


def _user_errors() -> tuple[type, ...]:
    """Exceptions that mean "fix the command, config or data": their message is the whole story."""
    from lifelong.arrivals import ArrivalError
    from lifelong.config import ConfigError
    from lifelong.data.manifest import PoolError
    from lifelong.data.readers import FormatError
    from lifelong.export.families import ExportError

    return UsageError, ConfigError, ArrivalError, PoolError, FormatError, ExportError


def disk_full(e: BaseException) -> bool:
    """Whether ``e`` (or what caused it) is the disk filling up: ``OSError`` ENOSPC/EDQUOT, SQLite's
    "database or disk is full", or a native writer's "os error 28" (safetensors)."""
    seen = 0
    while e is not None and seen < 8:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(e, sqlite3.OperationalError) and "disk is full" in str(e):
            return True
        text = str(e)
        if f"os error {errno.ENOSPC}" in text or "No space left on device" in text:
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def _failure(e: BaseException, args, debug: bool) -> int | None:
    """Report ``e`` the CLI's way and return the exit code; None = a bug (or --debug): re-raise it."""
    from lifelong.runlock import EXIT_LOCKED, RunLocked

    resume = getattr(args, "resume", None)
    if resume is not None and not RunLayout(resume).config.exists():
        resume = None  # stopped before the run directory was made: there is nothing to resume
    # What continues the run: the loop, or for a watched run the watcher (which runs the loop first).
    again = f"lifelong watch --run {resume}" if args.command == "watch" else f"lifelong run {resume}"
    if isinstance(e, BrokenPipeError) or (isinstance(e, OSError) and e.errno == errno.EPIPE):
        # The reader went away (``| head``): say nothing, and keep Python from
        # complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a real file (a test's capture)
            pass
        return EXIT_BROKEN_PIPE
    if isinstance(e, SystemExit):
        return None
    if debug:
        return None
    if isinstance(e, KeyboardInterrupt):
        _say("interrupted", f"finished stages are kept; '{again}' resumes" if resume else None)
        return EXIT_INTERRUPTED
    if isinstance(e, RunLocked):
        _say(str(e))
        return EXIT_LOCKED
    if disk_full(e):
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        _say(f"the disk is full ({first})",
             "nothing is lost: every finished stage and the pool are intact (check with 'lifelong pool check "
             + (f"--run {resume}')" if resume else "--run RUN')") + "; free space, then "
             + (f"'{again}' resumes" if resume else "run the command again"))
        return EXIT_DISK_FULL
    if isinstance(e, _user_errors()):
        _say(str(e), getattr(e, "hint", None))
        return EXIT_USER
    if resume and isinstance(e, Exception):
        # A failure inside a stage: the traceback (it may be a bug), and the way back in.
        import traceback

        traceback.print_exc()
        _say(f"{type(e).__name__}: {e}", f"finished stages are kept; once the cause is fixed, '{again}' "
             "resumes at the stage that failed (run with --debug for the traceback alone)")
        return 1
    return None


def _say(message: str, hint: str | None = None) -> None:
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
