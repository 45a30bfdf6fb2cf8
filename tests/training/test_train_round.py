"""One LoRA training round (lifelong/training/train.py) on a tiny model: schedule, step count,
seeded order, parameter groups, and that it learns what it is shown."""
import math

import pytest
import torch

from lifelong.data.sample import Sample
from lifelong.models.config import tiny_model_config
from lifelong.training.train import TrainConfig, lr_lambda, param_groups, train_round


def _samples(n: int) -> list[Sample]:
    conv = lambda i: [{"role": "user", "content": f"Which number is larger, {i} or {i + 7}?"},  # noqa: E731
                      {"role": "assistant", "content": str(i + 7)}]
    return [Sample(f"s{i}", "d", "t", "train", conv(i)) for i in range(n)]


def _no_images(key):
    raise AssertionError(f"text-only samples asked for image {key}")


@pytest.fixture
def model(model_cache):
    from lifelong.models import load_model

    return lambda **over: load_model(tiny_model_config(model_cache, "composed", **over))


def test_lr_schedule_worked_out_by_hand():
    # 10 steps, 2 of warm-up: 1/2, 2/2, then cosine from 1 down towards 0 over the 8 steps left
    assert [lr_lambda(s, 10, 2, "cosine") for s in (0, 1, 2)] == [0.5, 1.0, 1.0]
    assert lr_lambda(6, 10, 2, "cosine") == pytest.approx(0.5)  # half-way through the decay: cos(pi/2)
    assert lr_lambda(9, 10, 2, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert lr_lambda(6, 10, 2, "linear") == pytest.approx(0.5)
    assert lr_lambda(9, 10, 2, "constant") == 1.0
    assert lr_lambda(0, 1, 0, "cosine") == 1.0  # a one-step round trains at the peak lr


def test_steps_follow_epochs_and_batch_size(model):
    # 10 samples, batch 4 -> 3 micro-batches an epoch; 1.5 epochs -> ceil(4.5) = 5 optimizer steps
    losses = train_round(model(), _samples(10), _no_images,
                         TrainConfig(batch_size=4, epochs=1.5, lr=1e-3, progress=False), 1)
    assert [s for s, _ in losses] == [1, 2, 3, 4, 5]
    assert all(math.isfinite(v) for _, v in losses)
    # grad_accum 3: 3 micro-batches per step -> 1 step an epoch, ceil(1.5) = 2
    losses = train_round(model(), _samples(10), _no_images,
                         TrainConfig(batch_size=4, grad_accum=3, epochs=1.5, lr=1e-3, progress=False), 1)
    assert [s for s, _ in losses] == [1, 2]


def test_a_round_is_reproducible_and_its_order_depends_on_the_round(model):
    cfg = TrainConfig(batch_size=2, epochs=1, lr=5e-3, warmup_ratio=0.0, progress=False)
    a = train_round(m1 := model(), _samples(8), _no_images, cfg, 1)
    b = train_round(m2 := model(), _samples(8), _no_images, cfg, 1)
    assert a == b
    for (n, p), (_, q) in zip(m1.trainable_parameters().items(), m2.trainable_parameters().items()):
        assert torch.equal(p, q), n
    c = train_round(model(), _samples(8), _no_images, cfg, 2)  # seed + round: another shuffle
    assert [v for _, v in c] != [v for _, v in a]


def test_training_lowers_the_loss_of_what_it_was_shown(model):
    # one answer to learn (a random tiny LM cannot learn arithmetic in a few steps)
    samples = [Sample(f"s{i}", "d", "t", "train", [{"role": "user", "content": f"Is {i} a number?"},
                                                    {"role": "assistant", "content": "yes"}]) for i in range(8)]

    def mean_loss(loaded):
        return loaded.per_sample_loss(loaded.collate(samples, _no_images)).mean().item()

    after = {}
    for lr in (0.0, 2e-2):  # lr 0: the same steps move nothing, so any drop is the training's
        loaded = model()
        before = mean_loss(loaded)
        train_round(loaded, samples, _no_images, TrainConfig(batch_size=4, epochs=10, lr=lr, progress=False), 1)
        after[lr] = mean_loss(loaded)
    assert after[0.0] == pytest.approx(before, abs=1e-5)
    # 20 steps of a rank-4 LoRA on a random 2-layer LM: about 1 nat (10.6 -> 9.6) measured
    assert after[2e-2] < before - 0.5, (before, after)


def test_projector_gets_its_own_learning_rate(model):
    loaded = model()
    groups = param_groups(loaded, TrainConfig(lr=2e-3, projector_lr=2e-4))
    assert [g["lr"] for g in groups] == [2e-3, 2e-4]
    trainable = sum(p.numel() for p in loaded.model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in groups for p in g["params"]) == trainable
    assert len(param_groups(loaded, TrainConfig(lr=2e-3))) == 1  # no projector_lr: one group at lr
