"""The command line's handlers: one module per ``lifelong`` command, each with ``setup(parser)``
(its arguments) and ``run(args) -> exit code``; :mod:`lifelong.cli` lists them and turns failures
into one-line messages and exit codes.

Library packages never import this package; it imports them (heavy ones inside ``run``, so
``lifelong --help`` starts instantly).
"""
from __future__ import annotations

EXIT_USER = 2  # a command, config value, path or dataset to fix; nothing was written
EXIT_DISK_FULL = 28  # the disk filled up (28 = ENOSPC); finished work is kept, resume after freeing space
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT); finished work is kept
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (``| head``): 128 + SIGPIPE, as shell tools end


class UsageError(Exception):
    """A command line that cannot work; ``hint`` says what to do instead."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint
