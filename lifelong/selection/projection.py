"""Seeded Rademacher random projection of gradient vectors (docs/design.md step 1).

A gradient ``g`` of dimension D is sketched as ``g @ R`` with R a (D, d) matrix
whose entries are +1/sqrt(d) or -1/sqrt(d) with equal probability, so that
E[||g R||^2] = ||g||^2 and inner products are preserved within the
Johnson-Lindenstrauss bound.

R is never materialised. Row ``r`` of R is a pure function of ``(seed, r)``:
it is read from the Philox4x64-10 counter-based generator with key ``seed`` at
counter ``r * blocks_per_row`` (one counter step yields 4 x 64 = 256 random
bits, one bit per entry; the bits of a row beyond d are discarded). Any range
of rows can therefore be generated on its own, and the matrix is the same in
every process, every round, for every batch size and every ``block_rows``.
When the whole matrix fits in ``cache_bytes`` (as float of the input's
dtype), its blocks are kept after the first call: unpacking bits into floats
costs far more than the product itself (D = 81,408 LoRA gradient entries ->
a 167 MB float32 R, ~2 s per call on 2 CPU cores vs ~0.05 s for the product).
The cached blocks are the very tensors an uncached call builds, multiplied in
the same order, so results are bit-identical either way.
Philox's raw output is fixed by the algorithm, not by numpy's sampling
routines, so it does not change between numpy versions.

Works on numpy arrays and on torch tensors (any device); torch is imported
only when a tensor is passed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_BITS_PER_COUNTER = 256  # Philox4x64: 4 outputs of 64 bits per counter step


@dataclass
class ProjectionConfig:
    """Random projection of per-sample gradients.

    out_dim: d, the sketch dimension. 512 keeps the JL distortion of inner
        products of unit vectors around +-0.1 for thousands of samples while a
        fp16 sketch costs 1 KiB per sample.
    seed: key of the Philox generator; the same seed gives the same matrix on
        every process and every round.
    block_rows: rows of R generated at once. Memory of one block is
        block_rows * out_dim * 4 bytes (4096 x 512 -> 8 MiB); the result does
        not depend on it.
    cache_bytes: keep R's float blocks (per device and dtype) after the first
        projection when R fits in this many bytes; 0 = regenerate every call.
        256 MiB holds the default sketch of one decoder layer (D ~ 81k, d = 512:
        167 MB) but not a 4-layer one (667 MB), which is regenerated per call.
    """

    out_dim: int = 512
    seed: int = 0
    block_rows: int = 4096
    cache_bytes: int = 256 * 2**20


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


class RademacherProjector:
    """``project(x)`` = x @ R for x of shape (B, in_dim), R (in_dim, out_dim) implicit."""

    def __init__(self, in_dim: int, out_dim: int, seed: int = 0, block_rows: int = 4096,
                 cache_bytes: int = ProjectionConfig.cache_bytes):
        if in_dim < 1 or out_dim < 1 or block_rows < 1:
            raise ValueError(f"in_dim, out_dim, block_rows must be >= 1, got {in_dim}, {out_dim}, {block_rows}")
        if cache_bytes < 0:
            raise ValueError(f"cache_bytes must be >= 0, got {cache_bytes}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.seed = seed
        self.block_rows = block_rows
        self._counters_per_row = -(-out_dim // _BITS_PER_COUNTER)
        self._scale = 1.0 / np.sqrt(out_dim)
        self.cache_bytes = cache_bytes
        self._cache: dict = {}  # (kind, device, dtype) -> list of float blocks (rows, out_dim)

    @classmethod
    def from_config(cls, in_dim: int, cfg: ProjectionConfig) -> "RademacherProjector":
        return cls(in_dim, cfg.out_dim, cfg.seed, cfg.block_rows, cfg.cache_bytes)

    def _cached_blocks(self, key, itemsize: int, make):
        """The float blocks of R for ``key``, built by ``make(start, stop)``; kept when R fits the cache."""
        blocks = self._cache.get(key)
        if blocks is not None:
            return blocks
        starts = range(0, self.in_dim, self.block_rows)
        if self.in_dim * self.out_dim * itemsize > self.cache_bytes:
            return (make(s, min(s + self.block_rows, self.in_dim)) for s in starts)  # lazily, one at a time
        blocks = [make(s, min(s + self.block_rows, self.in_dim)) for s in starts]
        self._cache[key] = blocks
        return blocks

    def packed_bits(self, start: int, stop: int) -> np.ndarray:
        """Sign bits of rows [start, stop) of R, packed: uint8 (stop - start, counters_per_row * 32).

        Bit b (little-endian within each byte) of row r is 1 where R[r, b] = -1/sqrt(d).
        """
        n = stop - start
        words_per_row = 4 * self._counters_per_row
        bitgen = np.random.Philox(key=np.array([self.seed, 0], dtype=np.uint64),
                                  counter=np.array([start * self._counters_per_row, 0, 0, 0], dtype=np.uint64))
        raw = bitgen.random_raw(n * words_per_row)  # (n * words_per_row,) uint64
        return raw.astype("<u8", copy=False).view(np.uint8).reshape(n, words_per_row * 8)

    def block(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of R as float32 (stop - start, out_dim); for tests and small cases."""
        bits = np.unpackbits(self.packed_bits(start, stop), axis=1, bitorder="little")[:, : self.out_dim]
        return ((1.0 - 2.0 * bits.astype(np.float32)) * np.float32(self._scale)).astype(np.float32)

    def matrix(self) -> np.ndarray:
        """The whole R (in_dim, out_dim), materialised: a reference for tests only."""
        return self.block(0, self.in_dim)

    def project(self, x):
        """Sketch x (B, in_dim) -> (B, out_dim); numpy in numpy out, torch in torch out (same device/dtype)."""
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"expected x of shape (B, {self.in_dim}), got {tuple(x.shape)}")
        if _is_torch(x):
            return self._project_torch(x)
        x = np.asarray(x)
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
        out = np.zeros((x.shape[0], self.out_dim), dtype=dtype)  # (B, d)
        blocks = self._cached_blocks(("numpy", None, np.dtype(dtype).str), np.dtype(dtype).itemsize,
                                     lambda a, b: self.block(a, b).astype(dtype, copy=False))
        for start, r in zip(range(0, self.in_dim, self.block_rows), blocks):
            stop = min(start + self.block_rows, self.in_dim)
            out += x[:, start:stop].astype(dtype, copy=False) @ r
        return out

    def _project_torch(self, x):
        import torch

        dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        shifts = torch.arange(8, device=x.device, dtype=torch.uint8)
        # the 8 entries of every possible byte, (1 - 2 * bit) * scale: unpacking is one gather
        byte_bits = (torch.arange(256, device=x.device, dtype=torch.uint8).unsqueeze(-1) >> shifts) & 1  # (256, 8)
        table = (1 - 2 * byte_bits.to(dtype)) * self._scale  # (256, 8), little-endian bit order

        def make(start: int, stop: int):
            # move packed bits (1/32 of the float block) and unpack on the device
            packed = torch.from_numpy(self.packed_bits(start, stop)).to(x.device)  # (rows, bytes)
            return table[packed.long()].reshape(stop - start, -1)[:, : self.out_dim]  # (rows, d)

        out = torch.zeros(x.shape[0], self.out_dim, device=x.device, dtype=dtype)  # (B, d)
        blocks = self._cached_blocks(("torch", str(x.device), str(dtype)), dtype.itemsize, make)
        for start, r in zip(range(0, self.in_dim, self.block_rows), blocks):
            out += x[:, start:start + r.shape[0]].to(dtype) @ r
        return out


def normalize_fp16(x, eps: float = 1e-12):
    """L2-normalise rows of x (B, d) and cast to float16; all-zero rows stay zero.

    The norm is taken in float32 so that fp16 inputs cannot overflow.
    """
    if _is_torch(x):
        import torch

        x32 = x.to(torch.float32)
        norms = torch.linalg.vector_norm(x32, dim=1, keepdim=True).clamp_min(eps)
        return (x32 / norms).to(torch.float16)
    x32 = np.asarray(x, dtype=np.float32)
    norms = np.maximum(np.linalg.norm(x32, axis=1, keepdims=True), eps)
    return (x32 / norms).astype(np.float16)
