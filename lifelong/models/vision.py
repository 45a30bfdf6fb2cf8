"""Frozen vision encoders of the composed model, and their feature cache.

The encoder never trains, so its output for an image never changes: features
are computed once per image content hash and kept in memory (LRU) and on disk
(one safetensors file per image under ``cache_dir/vision_features/<fingerprint>``).
The fingerprint hashes the encoder's weights and the preprocessing, so a
different encoder, seed, image size or token count never reads stale features.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lifelong.models.config import ComposedConfig
from lifelong.models.weights import EFFNET_MEAN, EFFNET_STD, efficientnet_lite0

BLANK_KEY = "blank"
# The blank image of the grounding score: mid-gray, 0 after normalisation.
BLANK_RGB = (128, 128, 128)


class TinyConvEncoder(nn.Module):
    """Two strided convolutions, for tests: (B, 3, S, S) -> (B, C, S/4, S/4)."""

    def __init__(self, channels: int = 32):
        super().__init__()
        self.num_features = channels
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, channels, 3, stride=2, padding=1),
            nn.ReLU(),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_encoder(cfg: ComposedConfig, seed: int) -> tuple[nn.Module, tuple, tuple]:
    """(encoder with ``forward_features`` and ``num_features``, mean, std)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if cfg.vision == "tiny":
            return TinyConvEncoder(), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
        return efficientnet_lite0(pretrained=cfg.vision_pretrained), EFFNET_MEAN, EFFNET_STD


def blank_image(size: tuple[int, int]):
    """A constant mid-gray RGB image of ``size`` (width, height)."""
    from PIL import Image

    return Image.new("RGB", size, BLANK_RGB)


class VisionFeatures:
    """Image -> (image_tokens, C) features of a frozen encoder, cached by content hash."""

    def __init__(
        self,
        encoder: nn.Module,
        *,
        image_size: int,
        image_tokens: int,
        mean: tuple,
        std: tuple,
        cache_dir: Path | None,
        max_items: int,
        device: torch.device,
    ):
        grid = math.isqrt(image_tokens)
        if grid * grid != image_tokens or grid < 1:
            raise ValueError(f"image_tokens must be a square number (1, 4, 9, ...), got {image_tokens}")
        self.encoder = encoder.eval().requires_grad_(False).to(device)
        self.grid = grid
        self.image_size = image_size
        self.dim = int(encoder.num_features)
        self.device = device
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.max_items = max_items
        self.memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.fingerprint = self._fingerprint(mean, std)
        self.disk = Path(cache_dir) / "vision_features" / self.fingerprint if cache_dir is not None else None
        self.encoded = 0  # images actually run through the encoder (cache misses)

    def _fingerprint(self, mean, std) -> str:
        h = hashlib.sha256(repr((self.image_size, self.grid, tuple(mean), tuple(std))).encode())
        for name, t in self.encoder.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def preprocess(self, image) -> torch.Tensor:
        """PIL image -> (3, S, S) normalised float tensor (squashed to a square)."""
        from PIL import Image

        im = image.convert("RGB").resize((self.image_size, self.image_size), Image.BICUBIC)
        x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def encode(self, images: list) -> torch.Tensor:
        """Run the encoder on PIL images: (N, grid*grid, C), float32 on CPU."""
        x = torch.stack([self.preprocess(im) for im in images]).to(self.device)
        fmap = self.encoder.forward_features(x)  # (N, C, h, w)
        pooled = F.adaptive_avg_pool2d(fmap.float(), self.grid)  # (N, C, g, g)
        self.encoded += len(images)
        return pooled.flatten(2).transpose(1, 2).contiguous().cpu()

    def _disk_path(self, key: str) -> Path:
        if not re.fullmatch(r"[0-9a-zA-Z_-]{1,128}", key):
            key = hashlib.sha256(key.encode()).hexdigest()
        return self.disk / key[:2] / f"{key}.safetensors"

    def _remember(self, key: str, feat: torch.Tensor) -> None:
        self.memory[key] = feat
        self.memory.move_to_end(key)
        while len(self.memory) > self.max_items:
            self.memory.popitem(last=False)

    def _read_disk(self, key: str) -> torch.Tensor | None:
        if self.disk is None:
            return None
        path = self._disk_path(key)
        if not path.is_file():
            return None
        from safetensors.torch import load_file

        try:
            return load_file(path)["features"]
        except Exception:  # a torn file from a killed process: recompute it
            return None

    def _write_disk(self, key: str, feat: torch.Tensor) -> None:
        if self.disk is None:
            return
        from safetensors.torch import save_file

        path = self._disk_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
        os.close(fd)
        try:
            save_file({"features": feat}, tmp)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def features(self, keys: list[str], load: Callable[[str], object]) -> torch.Tensor:
        """Features of the images named by ``keys`` (content hashes): (N, grid*grid, C).

        ``load(key)`` returns the PIL image; it is called only for cache misses.
        The key ``"blank"`` is the mid-gray blank image.
        """
        out: dict[str, torch.Tensor] = {}
        missing = []
        for key in dict.fromkeys(keys):
            feat = self.memory.get(key)
            if feat is None:
                feat = self._read_disk(key)
                if feat is not None:
                    self._remember(key, feat)
            else:
                self.memory.move_to_end(key)
            if feat is None:
                missing.append(key)
            else:
                out[key] = feat
        if missing:
            images = [blank_image((self.image_size, self.image_size)) if k == BLANK_KEY else load(k) for k in missing]
            for key, feat in zip(missing, self.encode(images)):
                feat = feat.clone()
                out[key] = feat
                self._remember(key, feat)
                self._write_disk(key, feat)
        if not keys:
            return torch.zeros(0, self.grid * self.grid, self.dim)
        return torch.stack([out[k] for k in keys])
