"""Fixtures: the tiny run of ``export_tiny_run`` (built once per session) and a batch of it."""
from __future__ import annotations

import pytest

from export_tiny_run import (
    ACCURACY, CLUSTERS, DATASETS, PRUNED, RUN, SAMPLES, SELECTED, make_sample, perturb, tiny_model_config, write_json,
)
from lifelong.data.pool import Pool, PruneRecord
from lifelong.evaluation.history import RoundRecord, RunHistory, save_history, save_metrics
from lifelong.run_config import RunConfig, dump_run_config


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, model_cache):
    """(run_dir, LoadedModel with the round-2 adapter, directory of the saved tiny base)."""
    import torch

    from lifelong.models import load_model
    from lifelong.models.families.hf.build import build_hf

    root = tmp_path_factory.mktemp("export")
    run_dir = root / RUN
    cfg = RunConfig(name=RUN, runs_dir=root, model=tiny_model_config(model_cache))
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(dump_run_config(cfg))

    pool = Pool(run_dir / "pool")
    for t, ds in DATASETS.items():
        with pool.transaction():
            ing = pool.new_ingest(f"{ds}.json", "llava", ds, "train", t)
            for sid, dset, task, img, dup, noise in SAMPLES:
                if dset == ds:
                    s = make_sample(pool, sid, dset, task, img, dup, noise)
                    pool.insert(s, s.content_key(), t, ing)
        n = sum(1 for s in SAMPLES if s[1] == ds)
        rd = run_dir / "rounds" / str(t)
        write_json(rd / "ingest" / "ingest.json", {"dataset": ds, "added": n, "unchanged": 0, "quarantined": 0})
        write_json(rd / "select" / "selection.json", {
            "round": t, "dataset": ds, "strategy": "adapt_inf", "budget": len(SELECTED[t]),
            "pool_size": pool.count(), "ids": SELECTED[t], "clusters": CLUSTERS[t]})
        records = [{"id": i, "cluster": c, "max_sim": m, "reason": "semdedup"} for i, c, m in PRUNED[t]]
        write_json(rd / "prune" / "pruned.json", {"round": t, "cap": 7 if records else None,
                                             "pool_size": pool.count(), "records": records})
        pool.prune([PruneRecord(r["id"], t, r["reason"], r["cluster"], r["max_sim"]) for r in records])
    pool.close()

    h = RunHistory(run=RUN, strategy="adapt_inf", tasks=["shapes", "count"])
    for t, row in enumerate(ACCURACY):
        h.set_accuracy_row(t, row)
    for t, ds in DATASETS.items():
        h.set_round(RoundRecord(round=t, dataset=ds, selected=len(SELECTED[t]), pruned=len(PRUNED[t])))
    save_history(h, run_dir)
    save_metrics(h, run_dir)

    loaded = load_model(cfg.model)
    loaded.save_adapter(run_dir / "adapters" / "round_0")
    for t in (1, 2):
        perturb(loaded, seed=t)
        loaded.save_adapter(run_dir / "adapters" / f"round_{t}")

    # The same tiny base, saved so that a process without lifelong can load it.
    base, processor = build_hf(cfg.model, torch.device("cpu"), torch.float32)
    base_dir = root / "tiny_llava_base"
    base.save_pretrained(base_dir, safe_serialization=True)
    processor.save_pretrained(base_dir)
    return run_dir, loaded, base_dir


@pytest.fixture(scope="session")
def tiny_batch(tiny_run):
    """A padded batch of one image sample and one text-only sample, collated by lifelong."""
    run_dir, loaded, _ = tiny_run
    with Pool(run_dir / "pool") as pool:
        samples = pool.get(["s0", "c1"])
        return loaded.collate(samples, pool.load_image)
