"""``lifelong round --run RUN --dataset PATH | --drop NAME``: a dataset that arrived, trained now; or taken back."""
from __future__ import annotations

from pathlib import Path

from lifelong.commands import UsageError
from lifelong.layout import RunLayout


def setup(p) -> None:
    p.add_argument("--dataset",
                   help="the newly arrived dataset: a folder (train/test files, a dataset.yaml or a save_to_disk "
                        "dataset) or a training file")
    p.add_argument("--drop", metavar="NAME",
                   help="instead: take back dataset NAME, added by round/watch, whose round has not trained")
    p.add_argument("--run", required=True, help="existing run directory")
    p.add_argument("--name", help="dataset name (default: from dataset.yaml, else the folder name or file stem)")
    p.add_argument("--test", default=None, help="its held-out split (default: the folder's test file, if any)")
    p.add_argument("--metric", default=None, help="answer metric of its task (default: exact_match)")


def run(args) -> int:
    import copy

    from lifelong.arrivals import append_entry, check, drop, resolve
    from lifelong.loop import run
    from lifelong.run_config import load_run_config
    from lifelong.run_checks import check_run_config
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
