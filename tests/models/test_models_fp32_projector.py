"""Under model.dtype=bfloat16 the trainable projector keeps fp32 master weights (LoRA already does)."""
import torch

from lifelong.machine import auto_dtype
from lifelong.training.train import TrainConfig, train_round


def _projector_copies(loaded):
    return {n: p for n, p in loaded.trainable_parameters().items() if "modules_to_save" in n}


def test_bf16_model_trains_the_projector_in_fp32(family, make_model, samples, images, tmp_path):
    loaded = make_model(family, dtype="bfloat16")
    copies = _projector_copies(loaded)
    assert copies and all(p.dtype == torch.float32 for p in copies.values())
    assert all(p.dtype == torch.float32 for p in loaded.trainable_parameters().values())
    # the frozen base stays bf16
    assert any(p.dtype == torch.bfloat16 for p in loaded.model.parameters() if not p.requires_grad)

    before = {n: p.detach().clone() for n, p in copies.items()}
    # lr 1e-5 moves a weight of ~0.05 by ~1e-5 per step: below bf16's resolution there (2^-8 * 0.05 = 2e-4),
    # so a bf16 weight would not move at all
    steps = train_round(loaded, samples, images.__getitem__, TrainConfig(batch_size=3, lr=1e-5, epochs=1,
                                                                        warmup_ratio=0.0, progress=False), 1)
    assert len(steps) == 1
    moved = [n for n, p in copies.items() if not torch.equal(p.detach(), before[n])]
    assert moved
    # most of the weight matrices' moves are ones bf16 storage would have rounded away
    # (biases start near 0, where bf16 is fine-grained)
    for n in [n for n in moved if n.endswith(".weight")]:
        delta = copies[n].detach() - before[n]
        lost = (delta != 0) & (copies[n].detach().bfloat16() == before[n].bfloat16())
        assert lost.sum() > 0.5 * (delta != 0).sum(), n

    # forward still runs in bf16 outside the projector, and the adapter round-trips the fp32 weights
    batch = loaded.collate(samples, images.__getitem__)
    assert loaded.hidden_states(batch).dtype == torch.bfloat16
    loaded.save_adapter(tmp_path / "a")
    again = make_model(family, dtype="bfloat16")
    again.load_adapter(tmp_path / "a")
    for n, p in _projector_copies(again).items():
        assert p.dtype == torch.float32 and torch.equal(p.detach(), copies[n].detach())


def test_merge_keeps_a_working_fp32_copy(make_model, samples, images):
    loaded = make_model("composed", dtype="bfloat16")
    loaded.merge_and_restart()
    assert all(p.dtype == torch.float32 for p in _projector_copies(loaded).values())
    batch = loaded.collate(samples, images.__getitem__)
    assert torch.isfinite(loaded.per_sample_loss(batch)).all()


def test_auto_dtype_reaches_the_frozen_base(make_model):
    loaded = make_model("composed", dtype="auto")
    want = {"bfloat16": torch.bfloat16, "float32": torch.float32}[auto_dtype("cpu")]
    assert loaded.dtype == want
    assert {p.dtype for p in loaded.model.parameters() if not p.requires_grad} == {want}
    assert all(p.dtype == torch.float32 for p in loaded.trainable_parameters().values())
