"""``lifelong`` command line: the table of commands, and what a failure becomes; ``main(argv)`` is
callable from tests. Each command is a module of :mod:`lifelong.commands` (``setup`` its arguments,
``run`` it).

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
import importlib
import os
import sqlite3
import sys

from lifelong.commands import (EXIT_BROKEN_PIPE, EXIT_DISK_FULL, EXIT_INTERRUPTED, EXIT_USER,  # noqa: F401
                               UsageError)
from lifelong.layout import RunLayout

# name -> help; the handler is lifelong.commands.<name> (setup(parser), run(args) -> exit code).
COMMANDS: dict[str, str] = {
    "ingest": "ingest datasets into a pool (bad records go to a quarantine report)",
    "pool": "inspect a pool: stats, check, ledger",
    "run": "run a lifelong stream: one round per dataset, resumable",
    "round": "add one newly arrived dataset to an existing run and train its round (or --drop one)",
    "watch": "task-stream manager: turn dataset folders dropped into an inbox into rounds of a live run",
    "data": "the built-in offline stream (prepare); check a config's datasets before training (check)",
    "select": "score a pool with a model and select samples (writes ids, clusters, experts, scores)",
    "train": "train one LoRA round on the samples of a selection (writes a PEFT adapter)",
    "eval": "re-evaluate a saved adapter of a run on every task",
    "dashboard": "write the self-contained HTML dashboard of one or more runs",
    "export": "export a round's adapter (PEFT), model card and lineage",
    "score": "score a JSONL file of answers with any answer metric",
    "suite": "evaluation suites: add a fixed test set to a run (evaluated every round, earlier rows back-filled)",
}


def command(name: str):
    """The module of command ``name`` (imported when first asked for)."""
    return importlib.import_module(f"lifelong.commands.{name}")


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
    for name, help_text in COMMANDS.items():
        command(name).setup(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("LIFELONG_DEBUG", "") not in ("", "0")
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = debug or args.debug
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return command(args.command).run(args) or 0
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
