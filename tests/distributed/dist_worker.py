"""Worker for the multi-process tests: scoring and one training round on a tiny model.

Run alone (one process) or under ``accelerate launch`` (several); every
process builds the same tiny model and data. Writes under OUT:

- ``shards/``: the scoring pass (each process its shards), read back with ``load_scores``;
- ``answers_rank<r>.json``: greedy answers to every sample through ``ShardedGenerator``;
- ``adapter_init/``: the adapter before training; ``adapter_rank<r>/``: after one round, from every process;
- ``losses_rank<r>.json``: the logged losses.

Usage: python dist_worker.py OUT CACHE_DIR [score] [eval] [train]
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

N_SAMPLES = 24  # scoring: 6 shards of 4, split 3/3 over two processes
SHARD = 4
TRAIN_SAMPLES = 16  # training: 2 optimizer steps of 8 samples (8 = 1 x 8 = 2 x 4)
GLOBAL_BATCH = 8


def data():
    from PIL import Image

    from lifelong.data.sample import Sample

    images = {}
    for c in [(200, 0, 0), (0, 200, 0), (0, 0, 200), (90, 90, 90)]:
        buf = io.BytesIO()
        Image.new("RGB", (20, 20), c).save(buf, format="PNG")
        images[hashlib.sha256(buf.getvalue()).hexdigest()] = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    keys = list(images)
    answers = ["red", "a green one", "blue!", "grey and more words", "no", "it is a square"]
    samples = []
    for i in range(N_SAMPLES):
        img = i % 3 != 0
        conv = [{"role": "user", "content": ("<image>\n" if img else "") + "word " * (1 + i % 5) + "?"},
                {"role": "assistant", "content": answers[i % len(answers)]}]
        samples.append(Sample(id=f"s{i:02d}", dataset="d", task="t", split="train", conversation=conv,
                              images=[keys[i % 4]] if img else []))
    return samples, images.__getitem__


def model(cache_dir: str):
    import torch

    from lifelong.models import load_model
    from lifelong.models.config import tiny_model_config

    cfg = tiny_model_config(cache_dir)
    m = load_model(cfg)
    # A fresh adapter has B = 0; perturb (seeded, the same on every process) so every gradient is non-zero.
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.lora_parameters().values():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return m


def main(argv: list[str]) -> None:
    import torch

    from lifelong import distributed
    from lifelong.selection.score import ScoreConfig, score_samples
    from lifelong.selection.projection import ProjectionConfig
    from lifelong.selection.sketch import SketchConfig
    from lifelong.training.train import TrainConfig, train_round

    out, cache = Path(argv[0]), argv[1]
    out.mkdir(parents=True, exist_ok=True)
    jobs = argv[2:] or ["score", "eval", "train"]
    rank, world = distributed.rank_world()
    torch.set_num_threads(1)
    loaded = model(cache)
    samples, load = data()
    if "score" in jobs:
        cfg = ScoreConfig(sketch=SketchConfig(projection=ProjectionConfig(out_dim=32), batch_size=3), shard_size=SHARD)
        score_samples(loaded, samples, load, cfg, out / "shards", rank=rank, world=world, progress=False)
        distributed.barrier()
    if "eval" in jobs:
        answers = distributed.ShardedGenerator(loaded).generate(samples, load, max_new_tokens=4, batch_size=8)
        (out / f"answers_rank{rank}.json").write_text(json.dumps(answers))
    if "train" in jobs:
        if rank == 0:
            loaded.save_adapter(out / "adapter_init")
        cfg = TrainConfig(batch_size=GLOBAL_BATCH // world, lr=1e-3, warmup_ratio=0.0, schedule="linear",
                          max_grad_norm=1.0, progress=False)
        losses = train_round(loaded, samples[:TRAIN_SAMPLES], load, cfg, round_=1)
        loaded.save_adapter(out / f"adapter_rank{rank}")
        (out / f"losses_rank{rank}.json").write_text(json.dumps(losses))
    (out / f"world_rank{rank}.json").write_text(json.dumps({"rank": rank, "world": world}))
    distributed.barrier()


if __name__ == "__main__":
    main(sys.argv[1:])
