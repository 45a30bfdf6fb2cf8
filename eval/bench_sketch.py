"""Benchmark: per-sample gradient-sketch throughput vs a training step and vs the batch-size-1 loop.

On the demo's model settings (``configs/demo.yaml``: the offline default
EfficientNet-Lite0 + SmolLM2-135M, LoRA on decoder layers 26-29, sketch layer
-1, ``system_prompt: ""``, ``max_length: 64``), with a seeded mix of samples of
every task of the built-in ``full`` stream (ingested into a pool through the real
path) and their vision features cached first, so every method does LM work only:

- ``score_full``: the scoring pass ``Scorer.score_batch``: sketch + every
  default expert, including the image-blanked forward of ``ig``;
- ``score_sketch``: the same pass with ``experts=["grand"]``: the sketch alone;
- ``train``: a plain training step at the same batch size: ``batch_loss`` +
  backward + gradient clipping + AdamW step on the trainable parameters (LoRA of
  layers 26-29 and the projector, as ``train_round`` does);
- ``bs1_loop``: the reference implementation's approach: one sample at a time,
  forward, backward to the sketched LoRA parameters, the same projection.

Methods run interleaved batch by batch (rotating which goes first), so load
from other processes on a shared machine falls on all of them alike; the
first batch is a warm-up (it also fills the projection cache) and is not
timed. Throughput is reported per wall second and per CPU second of this
process (the latter is less sensitive to other processes). The bs-1 sketches
are checked against the batched ones.

Run: ``python -m eval.bench_sketch [--samples 64] [--batch-size 16] [--threads 2]``;
prints a table and the ratios, writes eval/results/bench_sketch.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from lifelong.machine import CpuUse, use_line

RESULTS = Path(__file__).resolve().parent / "results"
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
TARGET_VS_TRAIN = 1.0
TARGET_VS_BS1 = 4.0
METHODS = ("score_full", "score_sketch", "train", "bs1_loop")


# ---- shared with bench_clusters.py ----------------------------------------------------


def stream_pool(data_dir: Path, scale: str, seed: int):
    """The built-in stream prepared under ``data_dir/stream`` and its train splits in a pool at ``data_dir/pool``.

    Both are reused when already there (ingestion of unchanged records is a no-op).
    """
    from lifelong.data.ingest import IngestConfig, ingest
    from lifelong.data.pool import Pool
    from lifelong.data.stream import prepare_stream, read_manifest

    stream = data_dir / f"stream_{scale}_{seed}"
    if not (stream / "stream.json").exists():
        prepare_stream(stream, scale, seed)
    pool = Pool(data_dir / f"pool_{scale}_{seed}")
    infos = read_manifest(stream)
    if pool.count() < sum(i.n_train for i in infos):
        for info in infos:
            ingest(pool, stream / info.train, dataset=info.name, split="train", cfg=IngestConfig(progress=False))
    return pool


def load_bench_model(config: Path, overrides: list[str], threads: int | None):
    """(LoadedModel, RunConfig) of a run config's model settings (base adapter, as in round 0)."""
    from lifelong.models import load_model
    from lifelong.run_config import load_run_config

    rc = load_run_config(config, overrides)
    mc = dataclasses.replace(rc.model, num_threads=threads) if threads else rc.model
    return load_model(mc), rc


def cache_vision_features(loaded, samples, image_loader) -> float:
    """Encode every image of ``samples`` (and the blank image) once, so timed passes read the cache; seconds."""
    from lifelong.models.vision import BLANK_KEY

    features = getattr(loaded.backend, "features", None)
    if features is None:  # HF models encode pixels inside their forward
        return 0.0
    t0 = time.perf_counter()
    keys = list(dict.fromkeys(k for s in samples for k in s.images))
    for start in range(0, len(keys), 64):
        features.features(keys[start:start + 64], image_loader)
    features.features([BLANK_KEY], image_loader)
    return time.perf_counter() - t0


def mixed_samples(pool, n: int, seed: int):
    """``n`` train samples drawn without replacement, seeded, over every task of the pool, in random order."""
    import numpy as np

    samples = pool.samples()
    idx = np.random.default_rng(seed).permutation(len(samples))[:n]
    return [samples[i] for i in idx]


# ---- the methods ------------------------------------------------------------------------


class Methods:
    """The four ways of processing one batch; each returns per-sample sketches or None."""

    def __init__(self, loaded, rc, image_loader):
        import torch

        from lifelong.selection.projection import RademacherProjector
        from lifelong.selection.score import Scorer

        self.loaded, self.rc, self.load = loaded, rc, image_loader
        self.score_cfg = rc.score
        self.sketch_cfg = dataclasses.replace(rc.score, experts=["grand"])
        probe = Scorer(loaded, self.sketch_cfg, image_loader)
        self.sketch_names = list(probe.grads.modules)
        self.dim = probe.grads.dim
        self.sketch_params = probe.params  # same order as the hooks' flat gradient
        probe.close()
        sk = rc.score.sketch
        # One projector shared by every method: its float blocks are built once (outside the timing).
        self.projector = RademacherProjector.from_config(self.dim, sk.projection)
        self.train_params = [p for p in loaded.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.train_params, lr=rc.train.lr, weight_decay=rc.train.weight_decay)
        self.initial = [q.detach().clone() for q in self.train_params]

    def reset(self) -> None:
        """Undo the training steps, so every scoring method sees the same (round-0) weights."""
        import torch

        with torch.no_grad():
            for q, v in zip(self.train_params, self.initial):
                q.copy_(v)

    def _score(self, cfg, samples):
        from lifelong.selection.score import Scorer

        scorer = Scorer(self.loaded, cfg, self.load)  # hooks live only during its own pass
        scorer.projector = self.projector
        try:
            sketch, _, _ = scorer.score_batch(samples)
        finally:
            scorer.close()
        return sketch

    def score_full(self, samples):
        return self._score(self.score_cfg, samples)

    def score_sketch(self, samples):
        return self._score(self.sketch_cfg, samples)

    def train(self, samples):
        import torch

        from lifelong.training.train import batch_loss

        model = self.loaded.model
        model.train()
        try:
            loss = batch_loss(self.loaded, self.loaded.collate(samples, self.load))
            loss.backward()
            if self.rc.train.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.train_params, self.rc.train.max_grad_norm)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        finally:
            model.eval()
        return None

    def bs1_loop(self, samples):
        import torch

        from lifelong.selection.projection import normalize_fp16
        from lifelong.selection.sketch import only_these_trainable

        model = self.loaded.model
        model.eval()
        out = []
        for s in samples:
            batch = self.loaded.collate([s], self.load)
            with only_these_trainable(model, self.sketch_params), torch.enable_grad():
                loss = self.loaded.per_sample_loss(batch).sum()
                grads = torch.autograd.grad(loss, self.sketch_params, allow_unused=True)
            flat = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(1, -1).float()
                              for g, p in zip(grads, self.sketch_params)], dim=1)  # (1, D)
            out.append(normalize_fp16(self.projector.project(flat)).cpu())
        return torch.cat(out)


def run(methods: Methods, batches: list[list], warmup: list) -> dict:
    """Interleaved timing of every method over ``batches`` (after one untimed warm-up batch)."""
    t0 = time.perf_counter()
    for name in METHODS:
        getattr(methods, name)(warmup)
    methods.reset()
    warmup_s = time.perf_counter() - t0
    wall = dict.fromkeys(METHODS, 0.0)
    cpu = dict.fromkeys(METHODS, 0.0)
    per_batch = []  # {method: wall seconds} per batch, for ratios robust to bursts of outside load
    diffs = []
    for i, b in enumerate(batches):
        order = METHODS[i % len(METHODS):] + METHODS[: i % len(METHODS)]
        sketches, times = {}, {}
        for name in order:
            w0, c0 = time.perf_counter(), time.process_time()
            sketches[name] = getattr(methods, name)(b)
            times[name] = time.perf_counter() - w0
            wall[name] += times[name]
            cpu[name] += time.process_time() - c0
            methods.reset()  # untimed
        per_batch.append(times)
        a, c = sketches["score_sketch"].float(), sketches["bs1_loop"].float()
        diffs.append(((a - c).abs().max().item(), (a * c).sum(1).min().item()))
    n = sum(len(b) for b in batches)
    rows = {name: {"samples": n, "wall_s": round(wall[name], 2), "cpu_s": round(cpu[name], 2),
                   "samples_per_s": round(n / wall[name], 3), "samples_per_cpu_s": round(n / cpu[name], 3)}
            for name in METHODS}
    return {"warmup_s": round(warmup_s, 2), "methods": rows,
            "per_batch_wall_s": [{k: round(v, 3) for k, v in t.items()} for t in per_batch],
            "bs1_vs_batched_sketch": {"max_abs_diff": max(d[0] for d in diffs),
                                      "min_cosine": min(d[1] for d in diffs)}}


PAIRS = {"sketch_vs_train": ("score_sketch", "train"), "sketch_vs_bs1": ("score_sketch", "bs1_loop"),
         "full_pass_vs_train": ("score_full", "train"), "full_pass_vs_bs1": ("score_full", "bs1_loop")}


def ratios(methods: dict, per_batch: list[dict]) -> dict:
    """Throughput ratios: of the totals (wall, CPU) and the median of per-batch ratios (wall)."""
    import statistics

    out = {}
    for key, tag in (("samples_per_s", "wall"), ("samples_per_cpu_s", "cpu")):
        out[tag] = {k: round(methods[a][key] / methods[b][key], 3) for k, (a, b) in PAIRS.items()}
    out["median_per_batch"] = {k: round(statistics.median(t[b] / t[a] for t in per_batch), 3)
                               for k, (a, b) in PAIRS.items()}
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=64, help="timed samples per method (warm-up batch extra)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the config's score.sketch.batch_size")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (0 = torch's default)")
    p.add_argument("--config", type=Path, default=DEMO_CONFIG, help="run config whose model/score/train are used")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. score.sketch.layers=[-1,-2] (repeatable)")
    p.add_argument("--scale", choices=["small", "full"], default="full", help="built-in stream scale")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path, default=None, help="keep the prepared stream and pool here (default: temp)")
    p.add_argument("--out", type=Path, default=RESULTS / "bench_sketch.json")
    args = p.parse_args(argv)

    import torch

    with tempfile.TemporaryDirectory(prefix="bench-sketch-") as tmp:
        data = args.data or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        pool = stream_pool(data, args.scale, args.seed)
        prep_s = time.perf_counter() - t0
        loaded, rc = load_bench_model(args.config, args.overrides, args.threads or None)
        bs = args.batch_size or rc.score.sketch.batch_size
        samples = mixed_samples(pool, args.samples + bs, args.seed)
        feat_s = cache_vision_features(loaded, samples, pool.load_image)
        methods = Methods(loaded, rc, pool.load_image)
        t0 = time.perf_counter()
        methods.projector.project(torch.zeros(1, methods.dim))  # build the cached blocks once
        proj_fill_s = time.perf_counter() - t0
        warmup, timed = samples[:bs], samples[bs:]
        batches = [timed[i:i + bs] for i in range(0, len(timed), bs)]
        with CpuUse() as use:  # the wall figures count only if the benchmark had the machine to itself
            res = run(methods, batches, warmup)
        masks = [loaded.collate(b, pool.load_image)["attention_mask"] for b in batches]
        pool.close()

    tasks: dict[str, int] = {}
    for s in timed:
        tasks[s.task] = tasks.get(s.task, 0) + 1
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads",
        "device": str(loaded.device),
        "torch": torch.__version__,
        "cpu_use": use.record(),
        "config": str(args.config), "overrides": args.overrides,
        "model": {"family": rc.model.family, "lm": rc.model.composed.lm, "vision": rc.model.composed.vision,
                  "lora_layers": loaded.lora_layers, "max_length": rc.model.max_length},
        "sketch": {"layers": rc.score.sketch.layers, "grad_dim": methods.dim, "out_dim": rc.score.sketch.projection.out_dim,
                   "modules": len(methods.sketch_names)},
        "experts": list(rc.score.experts),
        "batch_size": bs, "samples": len(timed), "tasks": tasks,
        "tokens_per_sample": round(sum(int(m.sum()) for m in masks) / len(timed), 1),
        "padded_tokens_per_sample": round(sum(m.numel() for m in masks) / len(timed), 1),
        "prepare_stream_and_pool_s": round(prep_s, 1), "vision_features_s": round(feat_s, 1),
        "projection_cache_fill_s": round(proj_fill_s, 2),
        **res,
        "ratios": ratios(res["methods"], res["per_batch_wall_s"]),
        "targets": {"sketch_vs_train": TARGET_VS_TRAIN, "sketch_vs_bs1": TARGET_VS_BS1},
    }
    result["targets_met"] = {
        tag: {"sketch_vs_train": rr["sketch_vs_train"] >= TARGET_VS_TRAIN,
              "sketch_vs_bs1": rr["sketch_vs_bs1"] >= TARGET_VS_BS1}
        for tag, rr in result["ratios"].items() if tag in ("wall", "median_per_batch")}
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


def print_table(r: dict) -> None:
    print(f"{r['samples']} samples, batch {r['batch_size']}, sketch layers {r['sketch']['layers']} "
          f"(D = {r['sketch']['grad_dim']} -> {r['sketch']['out_dim']}), {r['machine']}, {use_line(r['cpu_use'])}")
    print(f"{'method':<14}{'samples/s':>11}{'samples/cpu-s':>15}")
    for name, m in r["methods"].items():
        print(f"{name:<14}{m['samples_per_s']:>11.2f}{m['samples_per_cpu_s']:>15.2f}")
    for tag, rr in r["ratios"].items():
        print(f"ratios ({tag}): " + ", ".join(f"{k} {v:.2f}x" for k, v in rr.items()))
    for tag, met in r["targets_met"].items():
        print(f"targets ({tag}): sketch >= {TARGET_VS_TRAIN}x training: {met['sketch_vs_train']}; "
              f"sketch >= {TARGET_VS_BS1}x bs-1 loop: {met['sketch_vs_bs1']}")
    print(f"bs-1 vs batched sketches: {r['bs1_vs_batched_sketch']}")


if __name__ == "__main__":
    main()
