"""Benchmark: the offline default model (EfficientNet-Lite0 + SmolLM2-135M) on CPU.

Measured, in one process with ``num_threads`` torch threads (default 2):

- load time, cold: an empty cache directory, so SmolLM2's GGUF is dequantised
  and written as safetensors; then warm: the same directory again (imports are
  already paid; their time is reported on its own);
- training samples/s at batch 8 (from the median step time): collate (vision features already cached) +
  forward + backward + AdamW step on LoRA + projector, short VQA-like samples
  (~30-45 tokens), once with the chat template's default system prompt and once
  with ``system_prompt=""``;
- generation tokens/s: greedy, up to 32 new tokens for 8 prompts, batch 8 and
  batch 1 (median of 3 runs).

Run: ``python -m eval.bench_model [--threads 2] [--steps 10]``; prints a table
and writes eval/results/bench_model.json (with the share of the machine the
benchmark had, ``lifelong.machine.CpuUse``: other processes on the 2 cores slow
everything down, OpenMP threads most).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from lifelong.machine import CpuUse, use_line

RESULTS = Path(__file__).resolve().parent / "results"
COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "gray"]
SHAPES = ["circle", "square", "triangle"]


def make_images(n: int) -> dict:
    """``n`` distinct 64x64 pictures keyed by the sha256 of their PNG bytes."""
    from PIL import Image, ImageDraw

    out = {}
    for i in range(n):
        im = Image.new("RGB", (64, 64), (255, 255, 255))
        x = 4 + (i * 7) % 30
        ImageDraw.Draw(im).ellipse((x, x, x + 24, x + 24), fill=COLORS[i % len(COLORS)])
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        out[hashlib.sha256(buf.getvalue()).hexdigest()] = im
    return out


def make_samples(images: dict) -> list:
    from lifelong.data.sample import Sample

    out = []
    for i, key in enumerate(images):
        color, shape = COLORS[i % len(COLORS)], SHAPES[i % len(SHAPES)]
        out.append(
            Sample(
                id=f"bench-{i}",
                dataset="bench",
                task="vqa",
                split="train",
                conversation=[
                    {"role": "user", "content": f"<image>\nWhat color is the {shape}?"},
                    {"role": "assistant", "content": f"The {shape} is {color}."},
                ],
                images=[key],
            )
        )
    return out


def bench_train(m, samples, images, batch_size: int, steps: int) -> dict:
    import torch

    load = images.__getitem__
    batches = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    for b in batches:  # fill the feature cache: training epochs after the first see only cached features
        m.collate(b, load)
    opt = torch.optim.AdamW(m.trainable_parameters().values(), lr=1e-4)
    m.model.train()

    def step(b):
        batch = m.collate(b, load)
        loss = m.per_sample_loss(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return batch

    step(batches[0])  # warm-up
    times, tokens = [], 0
    for i in range(steps):
        t0 = time.perf_counter()
        batch = step(batches[i % len(batches)])
        times.append(time.perf_counter() - t0)
        tokens += int(batch["attention_mask"].sum())
    m.model.eval()
    median = statistics.median(times)
    return {
        "samples_per_s": round(batch_size / median, 2),  # from the median step: robust to a busy moment
        "samples_per_s_mean": round(steps * batch_size / sum(times), 2),
        "tokens_per_sample": round(tokens / (steps * batch_size), 1),
        "seconds_per_step_median": round(median, 3),
    }


def bench_generate(m, samples, images, batch_size: int, max_new_tokens: int, repeats: int = 3) -> dict:
    load = images.__getitem__
    prompts = samples[: max(batch_size, 8)]
    m.generate(prompts[:batch_size], load, max_new_tokens=4, batch_size=batch_size)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        answers = m.generate(prompts, load, max_new_tokens=max_new_tokens, batch_size=batch_size)
        times.append(time.perf_counter() - t0)
    dt = statistics.median(times)
    n_tokens = sum(len(m.tokenizer(a, add_special_tokens=False).input_ids) + 1 for a in answers)  # + end token
    return {
        "tokens_per_s": round(n_tokens / dt, 1),
        "new_tokens": n_tokens,
        "seconds": round(dt, 2),
        "example": answers[0],
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10, help="timed training steps per setting")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--out", type=Path, default=RESULTS / "bench_model.json")
    args = p.parse_args(argv)

    use = CpuUse().start()
    t0 = time.perf_counter()
    import peft  # noqa: F401  (imports timed on their own)
    import timm  # noqa: F401
    import torch
    import transformers  # noqa: F401

    from lifelong.models import ModelConfig, load_model

    t_import = time.perf_counter() - t0
    images = make_images(64)
    samples = make_samples(images)
    result: dict = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads by default, {args.threads} used",
        "torch": torch.__version__,
        "import_s": round(t_import, 2),
    }
    with tempfile.TemporaryDirectory(prefix="bench-model-cache-") as cache:
        cfg = ModelConfig(cache_dir=Path(cache), num_threads=args.threads, device="cpu")
        t0 = time.perf_counter()
        load_model(cfg)
        result["load_cold_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        m = load_model(cfg)
        result["load_warm_s"] = round(time.perf_counter() - t0, 2)
        result["train_default_system_prompt"] = bench_train(m, samples, images, args.batch_size, args.steps)
        short = load_model(dataclasses.replace(cfg, system_prompt=""))
        result["train_empty_system_prompt"] = bench_train(short, samples, images, args.batch_size, args.steps)
        result[f"generate_batch{args.batch_size}"] = bench_generate(
            m, samples, images, args.batch_size, args.max_new_tokens
        )
        result["generate_batch1"] = bench_generate(m, samples, images, 1, args.max_new_tokens)

    # Other processes on the machine slow every figure down: say how much of it the benchmark had.
    result["cpu_use"] = use.record()
    print(use_line(result["cpu_use"]))
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
