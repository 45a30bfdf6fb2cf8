"""``lifelong ingest PATH ... --pool DIR | --run RUN``: validate datasets and copy them into a pool."""
from __future__ import annotations

from pathlib import Path

from lifelong.commands import UsageError
from lifelong.commands.pool import add_pool_args, pool_dir


def setup(p) -> None:
    p.add_argument("paths", nargs="+", help="dataset files (.json/.jsonl/.parquet), LLaVA dataset folders, or save_to_disk dirs")
    add_pool_args(p)
    p.add_argument("--name", help="dataset name (default: folder name or file stem)")
    p.add_argument("--split", help="split name (default: from the file name, else train)")
    p.add_argument("--format", choices=["llava", "messages", "hf"], help="force a format (default: detect)")
    p.add_argument("--image-root", help="folder image paths are relative to (default: the file's folder)")
    p.add_argument("--round", type=int, default=0, help="round number recorded as round_added")


def run(args) -> int:
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
    with Pool(pool_dir(args)) as pool:
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
