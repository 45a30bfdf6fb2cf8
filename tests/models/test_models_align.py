"""Stage-1 projector alignment: caption targets, reproducibility, the shipped file, loading."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lifelong.models.align import (
    ASSET,
    EMPTY,
    AlignConfig,
    align_digit_indices,
    cell_words,
    tensors_sha256,
    train_projector,
)
from lifelong.models.composed import init_projector
from lifelong.models.config import tiny_model_config


def test_cell_words_put_each_object_in_the_cell_of_its_centre():
    scene = {"digit": None, "objects": [
        {"kind": "circle", "color": "red", "cx": 10, "cy": 50, "r": 4},     # bottom left
        {"kind": "square", "color": "blue", "cx": 40, "cy": 5, "r": 4},     # top right
        {"kind": "triangle", "color": "teal", "cx": 60, "cy": 60, "r": 3},  # bottom right
    ]}
    assert cell_words(scene, 2, 64) == [[EMPTY], ["blue", "square"], ["red", "circle"], ["teal", "triangle"]]
    # 3x3: 64 // 3 = 21.3 px per cell; x=40 -> column 1, y=5 -> row 0 (cell 1); (60, 60) -> cell 8.
    words = cell_words(scene, 3, 64)
    assert words[1] == ["blue", "square"] and words[6] == ["red", "circle"] and words[8] == ["teal", "triangle"]
    assert sum(w == [EMPTY] for w in words) == 6
    assert cell_words({"digit": 7, "objects": []}, 2, 64) == [["7"]] * 4


def test_alignment_digits_are_every_third():
    assert align_digit_indices(10) == [2, 5, 8]


def test_training_is_reproducible_bit_for_bit(model_cache):
    cfg = AlignConfig(n_large=6, n_small=6, n_digits=4, epochs=3, batch_size=16)
    mc = tiny_model_config(model_cache)
    a, report = train_projector(cfg, mc)
    b, _ = train_projector(cfg, mc)
    assert tensors_sha256(a) == tensors_sha256(b)
    assert report["cells"] == 16 * (4 + 9)
    # Width: tiny encoder (32 channels) -> tiny LM (64).
    assert a["0.weight"].shape == (64, 32) and a["2.weight"].shape == (64, 64)
    c, _ = train_projector(dataclasses.replace(cfg, seed=1), mc)
    assert tensors_sha256(c) != tensors_sha256(a)


def test_shipped_projector_matches_its_recorded_digest_and_the_default_model():
    state = load_file(str(ASSET))
    assert state["0.weight"].shape == (576, 1280) and state["2.weight"].shape == (576, 576)
    with safe_open(str(ASSET), "pt") as f:
        report = json.loads(f.metadata()["lifelong_stage1"])
    assert report["tensors_sha256"] == tensors_sha256(state)
    assert report["config"] == dataclasses.asdict(AlignConfig()) | {"grids": list(AlignConfig().grids)}


def test_projector_init_from_a_file_and_refusals(tmp_path):
    cfg = tiny_model_config(tmp_path)
    proj = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 64))
    ref = {k: torch.full_like(v, 0.25) for k, v in proj.state_dict().items()}
    save_file(ref, str(tmp_path / "p.safetensors"))
    init_projector(proj, dataclasses.replace(cfg, composed=dataclasses.replace(
        cfg.composed, projector_init=str(tmp_path / "p.safetensors"))))
    assert all(torch.equal(v, ref[k]) for k, v in proj.state_dict().items())
    # auto on a tiny model: random (the weights stay as they are)
    init_projector(proj, cfg)
    assert torch.equal(proj[0].weight, ref["0.weight"])
    with pytest.raises(ValueError, match="stage1"):
        init_projector(proj, dataclasses.replace(cfg, composed=dataclasses.replace(cfg.composed, projector_init="stage1")))
    wrong = torch.nn.Sequential(torch.nn.Linear(32, 8), torch.nn.GELU(), torch.nn.Linear(8, 64))
    with pytest.raises(ValueError, match="do not fit"):
        init_projector(wrong, dataclasses.replace(cfg, composed=dataclasses.replace(
            cfg.composed, projector_init=str(tmp_path / "p.safetensors"))))


def test_model_card_names_the_projector_the_base_started_from(tmp_path):
    from lifelong.models.families.composed.export import ComposedExport
    from lifelong.models.config import ModelConfig

    assert "stage-1 aligned projector" in ComposedExport(ModelConfig()).base_note()
    assert "seeded random projector" in ComposedExport(tiny_model_config(tmp_path)).base_note()
    cfg = ModelConfig()
    cfg.composed.projector_init = "/x/p.safetensors"
    assert "`/x/p.safetensors`" in ComposedExport(cfg).base_note()


@pytest.mark.offline_weights
def test_the_offline_default_starts_from_the_shipped_projector(tmp_path):
    from lifelong.models.composed import build_composed
    from lifelong.models.config import ModelConfig

    model, _, _ = build_composed(ModelConfig(device="cpu"), torch.device("cpu"), torch.float32)
    shipped = load_file(str(ASSET))
    assert all(torch.equal(v, shipped[k]) for k, v in model.projector.state_dict().items())
    cfg = ModelConfig(device="cpu")
    cfg.composed.projector_init = "random"
    random_model, _, _ = build_composed(cfg, torch.device("cpu"), torch.float32)
    assert not torch.equal(random_model.projector[0].weight, shipped["0.weight"])
