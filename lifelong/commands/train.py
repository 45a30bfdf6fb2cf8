"""``lifelong train``: one LoRA round on chosen samples of a pool, outside a run.

    lifelong train CONFIG --pool DIR --selection SEL.json --out ADAPTER_DIR [--adapter INIT] [key=value ...]

``SEL.json`` is a ``selection.json`` written by ``lifelong select`` (or any
JSON with an ``ids`` list); the adapter (LoRA + projector) goes to ``--out``.
"""
from __future__ import annotations

import json
from pathlib import Path


def setup(p) -> None:
    p.add_argument("config", help="run config YAML (its model and train sections are used)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    p.add_argument("--pool", required=True)
    p.add_argument("--selection", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--adapter", help="adapter to start from (default: a fresh one)")
    p.add_argument("--round", type=int, default=1, help="round number (seeds the data order)")


def run(args) -> int:
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"error: {args.out} is not empty")

    from lifelong.data.pool import Pool
    from lifelong.models import load_model
    from lifelong.run_config import load_run_config
    from lifelong.training.train import train_round

    cfg = load_run_config(args.config, args.overrides)
    ids = json.loads(args.selection.read_text())["ids"]
    loaded = load_model(cfg.model)
    if args.adapter:
        loaded.load_adapter(args.adapter)
    with Pool(args.pool) as pool:
        losses = train_round(loaded, pool.get(ids), pool.load_image, cfg.train, args.round)
    loaded.save_adapter(args.out)
    (args.out / "losses.json").write_text(json.dumps(losses))
    if losses:
        print(f"trained {len(ids)} samples, {len(losses)} logged steps, final loss {losses[-1][1]:.4f} -> {args.out}")
    return 0
