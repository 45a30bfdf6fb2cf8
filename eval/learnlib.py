"""Helpers of ``bench_learn.py``: a stream in a real pool, a validation split carved
from train, one task trained alone, accuracy on a list of samples.

Validation split: ``carve_validation`` draws (seeded) clean train samples of a
task (no injected noise, no near-duplicate relation with anything kept for
training), so every tuning number is measured on questions the model never
trained on and that are not the test questions.
"""
from __future__ import annotations

import random
import time
from pathlib import Path

from lifelong.data.ingest import ingest
from lifelong.data.pool import Pool
from lifelong.data.stream import prepare_stream
from lifelong.data.stream.config import StreamConfig


def build_pool(work: Path, tasks: list[str], stream: StreamConfig, seed: int = 0) -> Pool:
    """The built-in stream's ``tasks`` at scale ``full`` written under ``work/data`` and ingested
    into ``work/pool`` (train and test splits). Re-using ``work`` re-uses the pool."""
    work = Path(work)
    pool = Pool(work / "pool")
    have = set(pool.datasets())
    todo = [t for t in tasks if t not in have]
    if todo:
        infos = prepare_stream(work / "data", "full", seed, todo, stream)
        for info in infos:
            for split, rel in (("train", info.train), ("test", info.test)):
                ingest(pool, work / "data" / rel, dataset=info.name, split=split, round_added=0)
    return pool


def carve_validation(samples: list, n_val: int, seed: int) -> tuple[list, list]:
    """(train, validation): ``n_val`` clean samples drawn with ``seed`` for validation;
    train keeps the rest minus near-duplicates of a validation sample."""
    clean = [s for s in samples if s.provenance.get("noise") is None and s.provenance.get("duplicate_of") is None]
    rng = random.Random(seed)
    val = rng.sample(clean, min(n_val, len(clean)))
    val_ids = {s.id for s in val}
    train = [s for s in samples if s.id not in val_ids and s.provenance.get("duplicate_of") not in val_ids]
    return train, val


def accuracy(loaded, samples: list, load_image, max_new_tokens: int = 6, batch_size: int = 32) -> tuple[float, list[str]]:
    """Exact-match accuracy of greedy answers on ``samples`` and the answers."""
    from lifelong.evaluation.scoring import ANSWER_METRICS

    em = ANSWER_METRICS["exact_match"]
    answers = loaded.generate(samples, load_image, max_new_tokens=max_new_tokens, batch_size=batch_size)
    refs = [s.prompt_and_answer()[1] for s in samples]
    return sum(em(a, r) for a, r in zip(answers, refs)) / max(1, len(samples)), answers


def train_alone(loaded, samples: list, load_image, train_cfg, round_: int = 1) -> dict:
    """One training round of ``loaded`` on ``samples``; returns seconds and first/last loss."""
    from lifelong.training.train import train_round

    start = time.perf_counter()
    losses = train_round(loaded, samples, load_image, train_cfg, round_)
    return {"seconds": round(time.perf_counter() - start, 1),
            "loss_first": losses[0][1] if losses else None, "loss_last": losses[-1][1] if losses else None}
