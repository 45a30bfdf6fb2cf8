"""The ``clip`` expert: a tiny random open_clip model, images made here, no files fetched."""
import json

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from lifelong.config import from_dict
from lifelong.data.sample import Sample
from lifelong.selection.clip_score import TINY_CLIP, ClipConfig, ClipScorer, clip_text
from lifelong.selection.experts import PassOutputs, compute

MEAN = np.array(open_clip.OPENAI_DATASET_MEAN, dtype=np.float32)
STD = np.array(open_clip.OPENAI_DATASET_STD, dtype=np.float32)


def _image(seed: int, size: int = 32) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


IMAGES = {"h_red": Image.new("RGB", (32, 32), (220, 20, 20)), "h_noise": _image(1), "h_noise2": _image(2)}
LONG = "word " * 200


def _sample(i, user, answer, images=()):
    return Sample(id=f"s{i}", dataset="d", task="t", split="train",
                  conversation=[{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
                  images=list(images))


SAMPLES = [
    _sample(0, "<image>\nWhat colour is the square?", "red", ["h_red"]),
    _sample(1, "What is 2 + 2?", "4"),  # text-only
    _sample(2, "<image>\nDescribe.", LONG, ["h_noise"]),  # longer than the context: truncated
    _sample(3, "<image> and <image>: same?", "no", ["h_noise", "h_noise2"]),
]
TEXTS = ["what colour is the square? red", None, "describe. " + LONG.strip(), "and : same? no"]


class CountingLoader:
    def __init__(self):
        self.calls = []

    def __call__(self, h):
        self.calls.append(h)
        return IMAGES[h]


@pytest.fixture(scope="module")
def scorer():
    return ClipScorer.from_config(ClipConfig(tiny=True, seed=0, batch_size=2))


def test_similarity_range_and_text_only_zero(scorer):
    sim = scorer.similarity(SAMPLES, CountingLoader())
    assert sim.shape == (4,) and sim.dtype == torch.float64
    assert torch.all(sim.abs() <= 1.0)
    assert sim[1].item() == 0.0
    assert torch.all(sim[[0, 2, 3]] != 0.0)


def test_clip_text_drops_image_tokens_and_joins_answer():
    assert clip_text(SAMPLES[0]) == "What colour is the square? red"
    assert clip_text(SAMPLES[3]) == "and : same? no"


def test_similarity_equals_independent_computation(scorer):
    # An independent model from the same seed and config, images normalised by
    # hand (32x32 inputs: resize and crop are the identity), texts tokenized
    # from the hand-written strings.
    torch.manual_seed(0)
    model = open_clip.model.CLIP(**TINY_CLIP).eval()
    tok = open_clip.tokenizer.SimpleTokenizer(context_length=32)

    def img_emb(h):
        x = (np.asarray(IMAGES[h], dtype=np.float32) / 255.0 - MEAN) / STD  # (H, W, 3)
        e = model.encode_image(torch.from_numpy(x).permute(2, 0, 1)[None])[0].double()
        return e / e.norm()

    with torch.no_grad():
        expected = []
        for s, text in zip(SAMPLES, TEXTS):
            if text is None:
                expected.append(0.0)
                continue
            img = torch.stack([img_emb(h) for h in s.images]).mean(0)
            img = img / img.norm()
            t = model.encode_text(tok([text]))[0].double()
            expected.append(float(img @ (t / t.norm())))
    sim = scorer.similarity(SAMPLES, CountingLoader())
    np.testing.assert_allclose(sim.numpy(), expected, atol=1e-5)


def test_embed_images_unit_rows_zero_for_text_only(scorer):
    emb = scorer.embed_images(SAMPLES, CountingLoader())
    assert emb.shape == (4, scorer.dim) == (4, TINY_CLIP["embed_dim"])
    np.testing.assert_allclose(emb.norm(dim=1).numpy(), [1, 0, 1, 1], atol=1e-5)


def test_image_cache_encodes_each_hash_once():
    sc = ClipScorer.from_config(ClipConfig(tiny=True, batch_size=3))
    loader = CountingLoader()
    first = sc.similarity(SAMPLES, loader)
    second = sc.similarity(SAMPLES, loader)
    assert sorted(loader.calls) == ["h_noise", "h_noise2", "h_red"]
    assert torch.equal(first, second)
    small = ClipScorer.from_config(ClipConfig(tiny=True, cache_images=1))
    small.similarity(SAMPLES, CountingLoader())
    assert len(small._cache) == 1
    np.testing.assert_allclose(small.similarity(SAMPLES, CountingLoader()).numpy(), first.numpy(), atol=1e-6)


def test_same_seed_same_model_other_seed_differs():
    a = ClipScorer.from_config(ClipConfig(tiny=True, seed=7)).similarity(SAMPLES, CountingLoader())
    torch.manual_seed(123)  # the global RNG state must not matter
    b = ClipScorer.from_config(ClipConfig(tiny=True, seed=7)).similarity(SAMPLES, CountingLoader())
    c = ClipScorer.from_config(ClipConfig(tiny=True, seed=8)).similarity(SAMPLES, CountingLoader())
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_local_checkpoint_file_and_local_dir(tmp_path, scorer):
    from safetensors.torch import save_file

    want = scorer.similarity(SAMPLES, CountingLoader())
    ckpt = tmp_path / "tiny_clip.safetensors"
    save_file({k: v.contiguous() for k, v in scorer.model.state_dict().items()}, ckpt)
    loaded = ClipScorer.from_config(ClipConfig(tiny=True, seed=99, pretrained=str(ckpt)))
    torch.testing.assert_close(loaded.similarity(SAMPLES, CountingLoader()), want)

    folder = tmp_path / "clip_dir"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP}))
    save_file({k: v.contiguous() for k, v in scorer.model.state_dict().items()}, folder / "open_clip_model.safetensors")
    from_dir = ClipScorer.from_config(ClipConfig(model=f"local-dir:{folder}"))
    torch.testing.assert_close(from_dir.similarity(SAMPLES, CountingLoader()), want)


def test_no_model_configured_gives_none():
    assert ClipScorer.from_config(ClipConfig()) is None
    assert ClipScorer.from_config(ClipConfig(model="", tiny=False)) is None


@pytest.mark.parametrize("cfg, err, words", [
    (ClipConfig(model="ViT-B-32", pretrained="openai"), ValueError, "hub tag"),
    (ClipConfig(model="ViT-B-32", pretrained="laion2b_s34b_b79k"), ValueError, "never downloads"),
    (ClipConfig(model="hf-hub:timm/ViT-B-16-SigLIP"), ValueError, "never downloads"),
    (ClipConfig(model="ViT-B-32", pretrained="/no/such/file.pt"), FileNotFoundError, "local"),
    (ClipConfig(model="ViT-B-32"), ValueError, "pretrained"),
    (ClipConfig(model="no-such-arch", pretrained=__file__), ValueError, "not an open_clip architecture"),
])
def test_refuses_anything_that_would_download(cfg, err, words):
    with pytest.raises(err, match=words):
        ClipScorer.from_config(cfg)


def test_config_from_dict_merges_tiny_overrides():
    cfg = from_dict(ClipConfig, {"tiny": True, "tiny_config": {"embed_dim": 16, "vision_cfg": {"width": 64}}})
    sc = ClipScorer.from_config(cfg)
    assert sc.dim == 16
    assert sc.model.visual.conv1.out_channels == 64
    assert sc.model.context_length == TINY_CLIP["text_cfg"]["context_length"]


def test_registry_contract(scorer):
    sim = scorer.similarity(SAMPLES, CountingLoader())
    B = len(SAMPLES)
    # No response tokens: the clip expert reads clip_sim alone.
    out = PassOutputs(logits=torch.zeros(0, 5), targets=torch.zeros(0, dtype=torch.long),
                      rows=torch.zeros(0, dtype=torch.long), batch_size=B, clip_sim=sim,
                      has_image=torch.tensor([bool(s.images) for s in SAMPLES]), ids=[s.id for s in SAMPLES])
    got = compute(["clip"], out)["clip"]
    assert got.dtype == torch.float64 and got.shape == (B,)
    assert not torch.isnan(got).any()
    torch.testing.assert_close(got, sim)
