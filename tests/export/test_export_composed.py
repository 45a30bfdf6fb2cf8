"""The composed model's export: ``load_exported`` rebuilds the base from the saved config.

A one-round run of the tiny composed model (random conv encoder + tiny Llama);
only ``config.yaml`` and the adapters exist, so lineage fields are ``null``.
"""
from __future__ import annotations

import io
import json

import pytest
import torch

from export_tiny_run import perturb, png, tiny_model_config
from lifelong.data.sample import Sample
from lifelong.export import export, load_exported
from lifelong.run_config import RunConfig, dump_run_config

ATOL_SAME = 1e-6  # identical weights and ops: only run-to-run float noise
ATOL_MERGE = 1e-4  # merged W + s·B·A rounded once in float32


@pytest.fixture(scope="module")
def composed_run(tmp_path_factory, model_cache):
    from PIL import Image

    from lifelong.models import load_model

    root = tmp_path_factory.mktemp("composed")
    cfg = RunConfig(name="crun", runs_dir=root, model=tiny_model_config(model_cache, family="composed"))
    run_dir = root / "crun"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(dump_run_config(cfg))
    loaded = load_model(cfg.model)
    loaded.save_adapter(run_dir / "adapters" / "round_0")
    perturb(loaded, seed=3)
    loaded.save_adapter(run_dir / "adapters" / "round_1")

    blob = png(7)
    images = {"img7": Image.open(io.BytesIO(blob)).convert("RGB")}
    samples = [
        Sample("a", "d", "d", "train", [{"role": "user", "content": "<image>\nWhat is it?"},
                                        {"role": "assistant", "content": "noise"}], images=["img7"]),
        Sample("b", "d", "d", "train", [{"role": "user", "content": "Say hi."},
                                        {"role": "assistant", "content": "hi"}]),
    ]
    batch = loaded.collate(samples, images.__getitem__)
    with torch.no_grad():
        ref = loaded.forward(batch)
    return run_dir, batch, ref


def test_composed_adapter_export_loads_with_load_exported(composed_run, tmp_path):
    run_dir, batch, ref = composed_run
    out = export(run_dir, tmp_path / "exp")
    conf = json.loads((out / "adapter_config.json").read_text())
    assert conf["base_model_name_or_path"] == "lifelong-composed:tiny+tiny"
    assert conf["modules_to_save"] == ["projector"]
    assert "load_exported" in (out / "README.md").read_text()
    lin = json.loads((out / "lineage.json").read_text())
    assert lin["round"] == 1 and lin["rounds"][0]["selected"] is None and lin["trained_on"] == []

    loaded = load_exported(out)
    with torch.no_grad():
        got = loaded.forward(batch)
    torch.testing.assert_close(got, ref, atol=ATOL_SAME, rtol=0)


def test_composed_merged_export_loads_with_load_exported(composed_run, tmp_path):
    run_dir, batch, ref = composed_run
    out = export(run_dir, tmp_path / "merged", merge=True)
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    loaded = load_exported(out)
    assert all(float(p.detach().abs().max()) == 0 for n, p in loaded.lora_parameters().items() if "lora_B" in n)
    with torch.no_grad():
        got = loaded.forward(batch)
    torch.testing.assert_close(got, ref, atol=ATOL_MERGE, rtol=0)
    # The merged weights are what makes the difference: the fresh base without them differs.
    from lifelong.models import load_model

    fresh = load_model(loaded.cfg)
    with torch.no_grad():
        assert (fresh.forward(batch) - ref).abs().max() > 100 * ATOL_MERGE
