"""Vision features of the frozen encoder are computed once per image content hash."""
from __future__ import annotations

import torch

from lifelong.models.config import ComposedConfig
from lifelong.models.vision import BLANK_KEY, VisionFeatures, build_encoder


def _features(cache_dir, seed=0, image_tokens=4, max_items=100):
    cfg = ComposedConfig(vision="tiny", image_size=32, image_tokens=image_tokens)
    enc, mean, std = build_encoder(cfg, seed)
    return VisionFeatures(
        enc,
        image_size=32,
        image_tokens=image_tokens,
        mean=mean,
        std=std,
        cache_dir=cache_dir,
        max_items=max_items,
        device=torch.device("cpu"),
    )


class CountingLoader:
    def __init__(self, images):
        self.images, self.calls = images, 0

    def __call__(self, key):
        self.calls += 1
        return self.images[key]


def test_memory_then_disk_cache(tmp_path, images):
    keys = list(images)
    load = CountingLoader(images)
    vf = _features(tmp_path)
    first = vf.features(keys + [keys[0]], load)  # a repeated key is encoded once
    assert first.shape == (4, 4, vf.dim) and torch.equal(first[0], first[3])
    assert vf.encoded == 3 and load.calls == 3
    again = vf.features(keys, load)
    assert vf.encoded == 3 and load.calls == 3 and torch.equal(again, first[:3])
    # A new process (new instance) reads the disk cache: no image is loaded.
    vf2 = _features(tmp_path)
    from_disk = vf2.features(keys, load)
    assert vf2.encoded == 0 and load.calls == 3 and torch.equal(from_disk, first[:3])


def test_lru_bound_and_blank(tmp_path, images):
    keys = list(images)
    vf = _features(None, max_items=2)  # memory only
    vf.features(keys, images.__getitem__)
    assert len(vf.memory) == 2
    blank = vf.features([BLANK_KEY, BLANK_KEY], images.__getitem__)
    assert torch.equal(blank[0], blank[1]) and not torch.equal(blank[0], vf.features(keys[:1], images.__getitem__)[0])
    assert vf.features([], images.__getitem__).shape == (0, 4, vf.dim)


def test_fingerprint_separates_encoders(tmp_path, images):
    a, b, c = _features(tmp_path), _features(tmp_path, seed=1), _features(tmp_path, image_tokens=1)
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3
    assert c.features(list(images)[:1], images.__getitem__).shape == (1, 1, c.dim)


def test_collate_uses_cache_across_epochs(make_model, samples, images, tmp_path):
    m = make_model("composed")
    vf = m.backend.features
    vf.disk, vf.memory = tmp_path, type(vf.memory)()  # start cold
    load = CountingLoader(images)
    start = vf.encoded
    for _ in range(3):
        m.collate(samples, load)
        m.collate(samples, load, blank_images=True)
    assert load.calls == 2  # the two images of the batch, loaded once; the blank is not loaded
    assert vf.encoded == start + 3  # the two images and the blank, once each
