import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lifelong.selection.projection import ProjectionConfig, RademacherProjector, normalize_fp16

REPO = Path(__file__).resolve().parents[2]


def test_entries_are_plus_minus_one_over_sqrt_d():
    r = RademacherProjector(300, 64, seed=1).matrix()
    assert r.shape == (300, 64)
    assert set(np.unique(r).tolist()) == {np.float32(-1 / 8), np.float32(1 / 8)}
    # balanced signs: 19,200 fair coins, mean of +-1 within 5 sigma (sigma = 1/sqrt(19200))
    assert abs(np.sign(r).mean()) < 5 / math.sqrt(r.size)


@pytest.mark.parametrize("block_rows", [1, 7, 64, 1000])
def test_blockwise_equals_materialised(block_rows):
    p = RademacherProjector(257, 300, seed=4, block_rows=block_rows)  # 300 > 256 bits: 2 counters/row
    reference = RademacherProjector(257, 300, seed=4, block_rows=257).matrix()
    assert np.array_equal(p.matrix(), reference)
    x = np.random.default_rng(0).normal(size=(5, 257)).astype(np.float32)
    np.testing.assert_allclose(p.project(x), x @ reference, rtol=1e-5, atol=1e-5)
    xt = torch.from_numpy(x)
    out = p.project(xt)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), x @ reference, rtol=1e-5, atol=1e-5)


def test_independent_of_batch_size():
    p = RademacherProjector(100, 32, seed=9, block_rows=13)
    x = np.random.default_rng(1).normal(size=(8, 100)).astype(np.float32)
    whole = p.project(x)
    rows = np.concatenate([p.project(x[i:i + 1]) for i in range(8)])
    np.testing.assert_allclose(whole, rows, rtol=1e-6, atol=1e-6)


def test_different_seeds_differ():
    a = RademacherProjector(50, 64, seed=0).matrix()
    b = RademacherProjector(50, 64, seed=1).matrix()
    assert (a != b).mean() > 0.4


def test_jl_bound_on_random_vectors():
    # n unit vectors, d = 512: JL with distortion eps = sqrt(8 ln n / d) holds with high
    # probability for all pairwise norms; here eps = sqrt(8 ln 30 / 512) = 0.23.
    n, dim, d = 30, 4000, 512
    x = np.random.default_rng(2).normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = RademacherProjector(dim, d, seed=3, block_rows=512).project(x)
    eps = math.sqrt(8 * math.log(n) / d)
    gram_x, gram_y = x @ x.T, y @ y.T
    assert np.abs(np.diag(gram_y) - 1).max() <= eps  # norms
    assert np.abs(gram_y - gram_x).max() <= eps  # inner products of unit vectors


def test_same_seed_identical_in_two_processes(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from lifelong.selection.projection import RademacherProjector\n"
        "x = np.random.default_rng(0).normal(size=(4, 1000)).astype(np.float32)\n"
        "np.save(sys.argv[1], RademacherProjector(1000, 128, seed=42, block_rows=int(sys.argv[2])).project(x))\n"
    )
    outs = []
    for i, block_rows in enumerate([1000, 33]):
        path = tmp_path / f"p{i}.npy"
        subprocess.run([sys.executable, "-c", code, str(path), str(block_rows)], check=True, cwd=REPO)
        outs.append(np.load(path))
    x = np.random.default_rng(0).normal(size=(4, 1000)).astype(np.float32)
    here = RademacherProjector(1000, 128, seed=42, block_rows=1000).project(x)
    assert np.array_equal(outs[0], here)
    np.testing.assert_allclose(outs[1], here, rtol=1e-5, atol=1e-5)  # other block split: sum order differs


def test_normalize_fp16():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    out = normalize_fp16(x)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float32), [[0.6, 0.8], [0.0, 0.0]], atol=1e-3)
    t = normalize_fp16(torch.tensor([[3.0e4, 4.0e4]], dtype=torch.float16))  # would overflow in fp16
    assert t.dtype == torch.float16
    np.testing.assert_allclose(t.float().numpy(), [[0.6, 0.8]], atol=1e-3)


def test_from_config():
    p = RademacherProjector.from_config(10, ProjectionConfig(out_dim=8, seed=5, block_rows=3))
    assert (p.in_dim, p.out_dim, p.seed, p.block_rows) == (10, 8, 5, 3)


@pytest.mark.parametrize("as_torch", [False, True])
def test_cached_blocks_bit_identical_to_regenerated(as_torch):
    # 257 x 300 float32 = 308,400 bytes: cached under a 1 MB limit, regenerated under 0.
    x = np.random.default_rng(3).normal(size=(6, 257)).astype(np.float32)
    x = torch.from_numpy(x) if as_torch else x
    cached = RademacherProjector(257, 300, seed=4, block_rows=64, cache_bytes=2**20)
    fresh = RademacherProjector(257, 300, seed=4, block_rows=64, cache_bytes=0)
    first, second, ref = cached.project(x), cached.project(x[:2]), fresh.project(x)
    assert len(cached._cache) == 1 and len(next(iter(cached._cache.values()))) == 5  # ceil(257 / 64) blocks
    assert not fresh._cache
    to_np = (lambda t: t.numpy()) if as_torch else np.asarray
    assert np.array_equal(to_np(first), to_np(ref))
    assert np.array_equal(to_np(second), to_np(fresh.project(x[:2])))  # same batch shape: same kernels
    too_small = RademacherProjector(257, 300, seed=4, block_rows=64, cache_bytes=257 * 300 * 4 - 1)
    assert np.array_equal(to_np(too_small.project(x)), to_np(ref)) and not too_small._cache
