"""Stage-1 alignment of the composed model's projector (part of the offline base).

LLaVA starts instruction tuning from a projector already aligned on
image-caption pairs; a random projector makes the first rounds of a stream
learn the projector instead of the skill. This module trains the offline
default's projector once, on generated image-caption data, and the package
ships the result (``assets/projector_stage1.safetensors``, loaded by default,
see ``ComposedConfig.projector_init``).

Objective (cheap enough for a CPU, and deterministic): every image token (one
cell of the pooled encoder grid) is regressed onto the LM's input embeddings of
the words that caption that cell: the colour and shape of the objects whose
centre lies in the cell, the digit shown, or ``empty``. Mean squared error over
the embedding dimensions, AdamW, full passes in a fixed order. Cells are
taken from both a 2x2 and a 3x3 grid so either ``image_tokens`` setting fits.
After alignment an image token sits near the embedding of the words that
describe it, so the LM reads it much as it reads those words.

Data (disjoint from every stream test item by construction): generated scenes
drawn with ``lifelong.data.stream.draw`` (own seed, colours including easy-vqa's,
one large shape on a light background or 1-6 small ones on white), and the
scikit-learn digits reserved for alignment (``ALIGN_DIGITS``), which the stream
never draws. No easy-vqa image is used.

Reproduce bit for bit (one thread, fixed seeds, fixed order)::

    python -m lifelong.models.align --out lifelong/models/assets/projector_stage1.safetensors
    python -m lifelong.models.align --check      # retrains and compares with the shipped file
"""
from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lifelong.models.composed import STAGE1_PROJECTOR as ASSET
from lifelong.models.composed import make_projector

# Colour names and RGB variants: the stream's scene palette and the CSS named
# colours of the same names (easy-vqa draws with CSS colours), so a colour word
# is tied to the hue family rather than to one exact value.
ALIGN_COLORS = {
    "red": [(220, 30, 30), (255, 0, 0)], "green": [(30, 160, 50), (0, 255, 0), (0, 128, 0)],
    "blue": [(40, 70, 220), (0, 0, 255)], "yellow": [(230, 200, 20), (255, 255, 0)],
    "purple": [(140, 40, 170), (128, 0, 128)], "orange": [(240, 120, 10), (255, 165, 0)],
    "black": [(20, 20, 20), (0, 0, 0)], "gray": [(128, 128, 128)], "teal": [(0, 128, 128)],
    "brown": [(140, 80, 30), (165, 42, 42)],
}
ALIGN_SHAPES = ("circle", "square", "rectangle", "triangle")
EMPTY = "empty"


def align_digit_indices(n_digits: int = 1797) -> list[int]:
    """scikit-learn digit indices reserved for alignment (every third one); the stream never draws them."""
    return [i for i in range(n_digits) if i % 3 == 2]


@dataclass
class AlignConfig:
    """Stage-1 data and optimisation. ``grids``: pooled grids whose cells are targets."""

    seed: int = 0
    n_large: int = 500     # one large shape on a light background
    n_small: int = 500     # 1-6 small shapes on white
    n_digits: int = 400    # reserved scikit-learn digits
    image_size: int = 64
    grids: tuple = (2, 3)
    hidden: int = 0        # projector hidden width (0 = LM width), as ComposedConfig.projector_hidden
    epochs: int = 60
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0


def _draw(size: int, objects: list[dict], background: tuple) -> np.ndarray:
    from PIL import Image, ImageDraw

    from lifelong.data.stream.draw import draw_shape

    img = Image.new("RGB", (size, size), background)
    d = ImageDraw.Draw(img)
    for o in objects:
        kind = "square" if o["kind"] == "rectangle" else o["kind"]
        if o["kind"] == "rectangle":
            cx, cy, r = o["cx"], o["cy"], o["r"]
            d.rectangle((cx - r, cy - r // 2, cx + r, cy + r // 2), fill=o["rgb"])
        else:
            draw_shape(d, kind, o["cx"], o["cy"], o["r"], o["rgb"])
    return np.asarray(img, dtype=np.uint8).copy()


def make_scenes(cfg: AlignConfig) -> list[dict]:
    """Alignment images with their objects: ``{"image": (S, S, 3) uint8, "objects": [...], "digit": int|None}``."""
    from lifelong.data.stream.generators.vqa import _digits, digit_image

    rng = np.random.default_rng([cfg.seed, 1])
    colors, S = list(ALIGN_COLORS), cfg.image_size

    def colour() -> tuple[str, tuple]:
        name = colors[int(rng.integers(len(colors)))]
        return name, ALIGN_COLORS[name][int(rng.integers(len(ALIGN_COLORS[name])))]

    scenes = []
    for _ in range(cfg.n_large):
        r = int(rng.integers(6, 19))
        cx, cy = (int(v) for v in rng.integers(r + 2, S - r - 2, size=2))
        name, rgb = colour()
        obj = {"kind": ALIGN_SHAPES[int(rng.integers(4))], "cx": cx, "cy": cy, "r": r, "color": name, "rgb": rgb}
        bg = tuple(int(v) for v in rng.integers(215, 256, size=3))
        scenes.append({"image": _draw(S, [obj], bg), "objects": [obj], "digit": None})
    for _ in range(cfg.n_small):
        n = int(rng.integers(1, 7))
        objs: list[dict] = []
        for _ in range(200):
            if len(objs) == n:
                break
            r = int(rng.integers(4, 8))
            cx, cy = (int(v) for v in rng.integers(r + 2, S - r - 2, size=2))
            if all(max(abs(cx - o["cx"]), abs(cy - o["cy"])) >= r + o["r"] + 3 for o in objs):
                name, rgb = colour()
                objs.append({"kind": ("circle", "square", "triangle")[int(rng.integers(3))], "cx": cx, "cy": cy,
                             "r": r, "color": name, "rgb": rgb})
        scenes.append({"image": _draw(S, objs, (255, 255, 255)), "objects": objs, "digit": None})
    images, targets = _digits()
    reserved = align_digit_indices(len(targets))
    for i in rng.choice(len(reserved), size=min(cfg.n_digits, len(reserved)), replace=False):
        j = reserved[int(i)]
        scenes.append({"image": digit_image(images[j], S), "objects": [], "digit": int(targets[j])})
    return scenes


def cell_of(cx: float, cy: float, grid: int, size: int) -> int:
    """Row-major index of the cell of a ``grid`` x ``grid`` split holding pixel (cx, cy) of a ``size``-pixel
    square image: the order of ``VisionFeatures``' pooled tokens."""
    return min(grid - 1, int(cy * grid // size)) * grid + min(grid - 1, int(cx * grid // size))


def cell_words(scene: dict, grid: int, size: int) -> list[list[str]]:
    """Caption words of each cell of a ``grid`` x ``grid`` split (row-major, as the pooled tokens)."""
    if scene["digit"] is not None:
        return [[str(scene["digit"])] for _ in range(grid * grid)]
    cells: list[list[str]] = [[] for _ in range(grid * grid)]
    for o in scene["objects"]:
        cells[cell_of(o["cx"], o["cy"], grid, size)] += [o["color"], o["kind"]]
    return [c or [EMPTY] for c in cells]


def word_targets(tokenizer, embedding, words_per_cell: list[list[str]]):
    """(N, H) float32: mean input embedding of the tokens of each cell's words (no leading space)."""
    import torch

    weight = embedding.weight.detach().float()
    cache: dict[str, torch.Tensor] = {}
    out = []
    for words in words_per_cell:
        vecs = []
        for w in words:
            if w not in cache:
                ids = tokenizer(w, add_special_tokens=False)["input_ids"]
                cache[w] = weight[ids].mean(0)
            vecs.append(cache[w])
        out.append(torch.stack(vecs).mean(0))
    return torch.stack(out)


def train_projector(cfg: AlignConfig, model_cfg=None) -> tuple[dict, dict]:
    """Train the stage-1 projector; returns (state dict of ``nn.Sequential`` keys, report)."""
    import torch
    from torch import nn

    from PIL import Image

    from lifelong.models.composed import build_language_model, load_tokenizer
    from lifelong.models.config import ModelConfig
    from lifelong.models.vision import VisionFeatures, build_encoder

    torch.set_num_threads(1)  # bit-for-bit: one thread, fixed order
    mc = model_cfg or ModelConfig(dtype="float32", device="cpu")
    tok = load_tokenizer(mc)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(mc.seed)  # a random (tiny) LM is built as build_composed builds it
        embedding = build_language_model(mc, torch.float32, tok.pad_token_id).get_input_embeddings()
    encoder, mean, std = build_encoder(mc.composed, mc.seed)
    scenes = make_scenes(cfg)
    pil = [Image.fromarray(s["image"], "RGB") for s in scenes]
    prep = VisionFeatures(encoder, image_size=mc.composed.image_size, image_tokens=1, mean=mean, std=std,
                          cache_dir=None, max_items=0, device=torch.device("cpu"))
    with torch.no_grad():
        fmap = torch.cat([prep.encoder.forward_features(torch.stack([prep.preprocess(im) for im in pil[i : i + 64]]))
                          for i in range(0, len(pil), 64)]).float()  # (N, C, h, w)
    feats, targets = [], []
    for grid in cfg.grids:
        # The same pooling as VisionFeatures.encode: (N, C, g, g) -> (N * g * g, C), cells row-major.
        f = nn.functional.adaptive_avg_pool2d(fmap, grid).flatten(2).transpose(1, 2)
        feats.append(f.reshape(-1, f.shape[-1]))
        words = [w for s in scenes for w in cell_words(s, grid, cfg.image_size)]
        targets.append(word_targets(tok, embedding, words))
    x, y = torch.cat(feats), torch.cat(targets)  # (M, C), (M, H)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        proj = make_projector(x.shape[1], y.shape[1], cfg.hidden)
        order_gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(proj.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history = []
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(x), generator=order_gen)
        total = 0.0
        for b in range(0, len(x), cfg.batch_size):
            idx = perm[b : b + cfg.batch_size]
            loss = nn.functional.mse_loss(proj(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / len(x))
    with torch.no_grad():
        pred = proj(x)
        # Nearest-word accuracy: is the closest target vector the cell's own caption?
        uniq, inv = torch.unique(y, dim=0, return_inverse=True)
        nearest = torch.cdist(pred, uniq).argmin(1)
        word_acc = float((nearest == inv).float().mean())
    report = {"config": asdict(cfg), "cells": len(x), "images": len(scenes), "mse_first": history[0],
              "mse_last": history[-1], "target_var": float(y.var(0).sum()),
              "nearest_caption_accuracy": word_acc}
    return {k: v.detach().clone().contiguous() for k, v in proj.state_dict().items()}, report


def save(state: dict, report: dict, path: Path) -> str:
    """Write the safetensors file (report in its metadata); returns its sha256."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"lifelong_stage1": json.dumps(report, sort_keys=True)})
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tensors_sha256(state: dict) -> str:
    """Digest of the tensors alone (names, shapes, bytes), independent of file metadata."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(repr(tuple(state[k].shape)).encode())
        h.update(state[k].numpy().tobytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lifelong.models.align", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None, help="write the projector here")
    p.add_argument("--check", action="store_true", help="retrain and compare with the shipped file's tensors")
    a = p.parse_args(argv)
    state, report = train_projector(AlignConfig())
    digest = tensors_sha256(state)
    print(json.dumps({**report, "tensors_sha256": digest}, indent=1))
    if a.out:
        save(state, {**report, "tensors_sha256": digest}, a.out)
        print(f"wrote {a.out}")
    if a.check:
        from safetensors.torch import load_file

        shipped = tensors_sha256(load_file(str(ASSET)))
        print("identical to the shipped file" if shipped == digest else f"DIFFERS from the shipped file ({shipped})")
        return 0 if shipped == digest else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
