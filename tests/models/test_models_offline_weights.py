"""The real offline default: weights from the installed packages, nothing downloaded.

These load EfficientNet-Lite0 and SmolLM2-135M-Instruct (the first run converts
the GGUF into the cache, ``$LIFELONG_CACHE`` or ``~/.cache/lifelong``: ~40 s).
"""
from __future__ import annotations

import hashlib

import pytest
import torch

from lifelong.data.sample import Sample
from lifelong.models.config import ModelConfig

pytestmark = pytest.mark.offline_weights

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture(scope="module")
def lite0():
    from lifelong.models.weights import efficientnet_lite0

    return efficientnet_lite0(pretrained=True)


def _top1(model, image) -> int:
    from lifelong.models.vision import VisionFeatures

    vf = VisionFeatures(
        model,
        image_size=224,
        image_tokens=4,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        cache_dir=None,
        max_items=1,
        device=torch.device("cpu"),
    )
    with torch.no_grad():
        return int(model(vf.preprocess(image)[None]).argmax())


def test_lite0_key_mapping_is_complete_and_guarded(monkeypatch):
    import timm

    from lifelong.models import weights

    src = torch.load(weights.package_file(weights.EFFNET_PACKAGE, weights.EFFNET_FILE), weights_only=True)
    mapped = weights.map_lite0_keys(src)
    assert set(mapped) == set(timm.create_model("efficientnet_lite0").state_dict())
    # A mapping that leaves one tensor out must fail loudly, not keep a random init.
    real = weights.map_lite0_keys
    monkeypatch.setattr(weights, "map_lite0_keys", lambda sd: {k: v for k, v in list(real(sd).items())[1:]})
    with pytest.raises(weights.WeightsError):
        weights.efficientnet_lite0(pretrained=True)


def test_lite0_classifies_chelsea_and_coffee(lite0):
    from PIL import Image
    from skimage import data

    assert _top1(lite0, Image.fromarray(data.chelsea())) in CAT_CLASSES
    assert _top1(lite0, Image.fromarray(data.coffee())) in COFFEE_CLASSES


def test_offline_default_answers_and_sees():
    from PIL import Image
    from skimage import data

    from lifelong.models import load_model

    m = load_model(ModelConfig(device="cpu"))
    q = Sample(
        id="q",
        dataset="probe",
        task="qa",
        split="test",
        conversation=[{"role": "user", "content": "What is the capital of France?"}],
    )
    (answer,) = m.generate([q], None, max_new_tokens=16)
    assert "Paris" in answer
    # An image sample goes through the real encoder, projector and LM.
    cat = Image.fromarray(data.chelsea())
    key = hashlib.sha256(data.chelsea().tobytes()).hexdigest()  # the feature cache is keyed by content
    s = Sample(
        id="cat",
        dataset="probe",
        task="vqa",
        split="test",
        conversation=[
            {"role": "user", "content": "<image>\nWhat animal is this?"},
            {"role": "assistant", "content": "A cat."},
        ],
        images=[key],
    )
    load = {key: cat}.__getitem__
    batch = m.collate([s], load)
    assert batch["image_features"].shape == (1, 4, 1280)
    with torch.no_grad():
        real = m.per_sample_loss(batch)
        blank = m.per_sample_loss(m.collate([s], load, blank_images=True))
    assert torch.isfinite(real).all() and real.item() != blank.item()
