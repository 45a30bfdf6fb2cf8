"""``lifelong watch --run RUN``: the task-stream manager; folders dropped into the inbox become rounds."""
from __future__ import annotations

from pathlib import Path


def setup(p) -> None:
    p.add_argument("--run", required=True, help="run directory (created from --config when new)")
    p.add_argument("--inbox", help="folder to watch for arriving datasets (default: RUN/inbox)")
    p.add_argument("--config", help="run config YAML, to start a new run directory")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides of --config")
    p.add_argument("--poll", type=float, default=5.0, help="seconds between looks into the inbox")
    p.add_argument("--stable-after", type=float, default=None,
                   help="also take a folder without a READY file once its files are unchanged this many seconds")
    p.add_argument("--once", action="store_true", help="take what is ready, train it, and exit when the inbox is empty")


def run(args) -> int:
    from lifelong.watch import watch

    args.resume = Path(args.run)
    watch(args.run, args.inbox, args.config, args.overrides, args.poll, args.stable_after, args.once)
    return 0
