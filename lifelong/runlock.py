"""One writer per run directory.

Every command that changes a run (``run``, ``round``, ``watch``, ``eval``,
``export --merge``) holds an exclusive ``flock`` on ``<run>/run.lock`` while it
works. The kernel drops the lock when the holding process dies, however it
dies, so there are no stale locks to clean up after a crash or a SIGKILL. A
second writer is refused at once (:class:`RunLocked`, exit code
:data:`EXIT_LOCKED` on the command line) before it writes anything; readers
(``pool stats``, ``dashboard``) take no lock and keep working.

The lock file's content names the holder (pid, command, start time); it is
informational only, the ``flock`` is what excludes.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from lifelong.layout import RunLayout

EXIT_LOCKED = 3

# Real path of a locked run dir -> (fd, nesting depth). flock conflicts between
# two descriptors of one process too, so a process that already holds a run's
# lock (``round`` -> loop) re-enters through this table instead.
_held: dict[str, list[int]] = {}


class RunLocked(RuntimeError):
    """Another process holds the run directory's lock."""

    def __init__(self, run_dir: Path, holder: dict):
        self.run_dir, self.holder = run_dir, holder
        who = f"pid {holder.get('pid', '?')}"
        if holder.get("command"):
            who += f" ({holder['command']})"
        if holder.get("since"):
            who += f", since {holder['since']}"
        super().__init__(f"run directory {run_dir} is in use by another writer: {who}; "
                         "wait for it to finish or stop it (read-only commands such as "
                         "'lifelong pool stats' and 'lifelong dashboard' work meanwhile)")


def holder(run_dir: str | Path) -> dict:
    """What the lock file says about its holder (``{}`` if unreadable or empty)."""
    try:
        return json.loads(RunLayout(run_dir).lock.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def running(run_dir: str | Path) -> dict:
    """The holder (as :func:`holder`) if a live process on this host holds the lock, else ``{}``.

    Reads the lock file only, so it never competes with a writer for the lock.
    A writer clears the file when it lets go; one that was killed leaves its
    record behind, but its pid is gone (the pid could be reused: this is for
    reports, the ``flock`` is what excludes).
    """
    h = holder(run_dir)
    pid = h.get("pid")
    if not isinstance(pid, int) or h.get("host") not in (None, socket.gethostname()):
        return {}
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return {}
    except PermissionError:  # alive, another user's
        pass
    return h


@contextmanager
def run_lock(run_dir: str | Path, command: str | None = None):
    """Hold ``run_dir``'s writer lock for the ``with`` block (re-entrant within a process).

    Creates ``run_dir`` if needed. Raises :class:`RunLocked` without waiting
    when another process holds it.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(run_dir)
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    fd = os.open(RunLayout(run_dir).lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunLocked(run_dir, holder(run_dir)) from None
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "command": command or " ".join(["lifelong", *sys.argv[1:]]),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    _held[key] = [fd, 1]
    try:
        yield
    finally:
        _held[key][1] -= 1
        if _held[key][1] == 0:
            del _held[key]
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the last descriptor releases the flock
