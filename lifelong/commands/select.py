"""``lifelong select``: score a pool with a model and select, outside a run.

    lifelong select CONFIG --pool DIR --out DIR [--adapter DIR] [--new DATASET] [key=value ...]

Writes into ``--out``: ``shards/`` (sketches, embeddings, every expert's
scores), ``selection.json`` (ids, clusters, routed experts and entropies) and
``scores.parquet`` (per-sample scores, cluster, selected). Resumable: scoring
shards already written are kept.
"""
from __future__ import annotations

from pathlib import Path


def setup(p) -> None:
    p.add_argument("config", help="run config YAML (its model, score and select sections are used)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    p.add_argument("--pool", required=True, help="pool directory")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--adapter", help="adapter directory to load (default: the fresh adapter)")
    p.add_argument("--new", help="dataset that counts as newly arrived (for the sequential strategy)")


def run(args) -> int:

    from lifelong.data.pool import Pool
    from lifelong.run_config import load_run_config
    from lifelong.selection.outputs import write_selection
    from lifelong.selection.score import score_samples
    from lifelong.selection.score_store import consolidate
    from lifelong.selection.strategies import SelectionInput, get_strategy

    cfg = load_run_config(args.config, args.overrides)
    strategy = get_strategy(cfg.select.strategy)
    with Pool(args.pool) as pool:
        inp = SelectionInput.from_pool(pool, args.new)
        ids = inp.ids
        if not ids:
            raise SystemExit(f"error: pool {args.pool} has no active training samples")
        scores = None
        if strategy.needs_scores:
            from lifelong.models import load_model

            loaded = load_model(cfg.model)
            if args.adapter:
                loaded.load_adapter(args.adapter)
            score_samples(loaded, pool.view(ids), pool.load_image, strategy.score_config(cfg.score),
                          args.out / "shards", sketch=strategy.sketches)
            scores = consolidate(args.out / "shards", len(ids), cfg.score.shard_size, args.out / "columns")
            inp.add_scores(scores)
        sel = strategy.fn(inp, cfg.select)
        rec = write_selection(args.out, ids, sel, scores.scores if scores else None, strategy=cfg.select.strategy)
    print(f"selected {rec['budget']} of {rec['pool_size']} samples -> {args.out / 'selection.json'}")
    for c in rec["clusters"]:
        print(f"  cluster {c['id']:>3}: {c['size']:>6} samples, {c['share']:>5} selected, expert {c['expert']}")
    return 0
