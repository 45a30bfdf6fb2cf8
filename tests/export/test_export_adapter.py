"""Export of a tiny HF LLaVA run: plain-peft loading in a fresh process, merged weights, refusals."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from lifelong.cli import main as cli_main
from lifelong.export import ExportError, export

# Same float32 computation on both sides (same weights, same ops), so only
# summation-order noise: 1e-5 absolute on logits of magnitude ~1.
ATOL_PEFT = 1e-5
# Merged weights W + s·B·A are rounded once in float32, then the whole network
# runs on them: differences of a few ulps per weight, 1e-4 on logits.
ATOL_MERGE = 1e-4

FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForImageTextToText
    from peft import PeftModel

    export_dir, inputs_path, out_path = sys.argv[1:4]
    base_path = json.load(open(export_dir + "/adapter_config.json"))["base_model_name_or_path"]
    base = AutoModelForImageTextToText.from_pretrained(base_path, local_files_only=True)
    model = PeftModel.from_pretrained(base, export_dir).eval()
    inputs = load_file(inputs_path)
    with torch.no_grad():
        logits = model(**inputs).logits.float()
    save_file({"logits": logits.contiguous()}, out_path)
    assert not any(m == "lifelong" or m.startswith("lifelong.") for m in sys.modules), "lifelong was imported"
    """
)


def _model_inputs(batch: dict) -> dict:
    return {k: v.contiguous() for k, v in batch.items() if k != "labels"}


def _lifelong_logits(loaded, batch) -> torch.Tensor:
    """Logits of the model inside lifelong, in HF alignment: (B, T-1, V) = prediction made at positions 0..T-2."""
    with torch.no_grad():
        return loaded.forward(batch)[:, 1:]


def test_export_loads_with_plain_peft_in_fresh_process(tiny_run, tiny_batch, tmp_path):
    from safetensors.torch import load_file, save_file

    run_dir, loaded, base_dir = tiny_run
    out = export(run_dir, tmp_path / "exp", round=2, base_model=str(base_dir))
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "adapter_config.json", "adapter_model.safetensors", "lifelong_model.yaml", "lineage.json"]
    conf = json.loads((out / "adapter_config.json").read_text())
    assert conf["base_model_name_or_path"] == str(base_dir)
    assert conf["modules_to_save"] == ["multi_modal_projector"]

    save_file(_model_inputs(tiny_batch), str(tmp_path / "inputs.safetensors"))
    script = tmp_path / "load_plain.py"
    script.write_text(FRESH_PROCESS)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    res = subprocess.run(
        [sys.executable, str(script), str(out), str(tmp_path / "inputs.safetensors"), str(tmp_path / "logits.st")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    plain = load_file(str(tmp_path / "logits.st"))["logits"][:, :-1]  # (B, T-1, V)

    loaded.load_adapter(run_dir / "adapters" / "round_2")
    ours = _lifelong_logits(loaded, tiny_batch)
    assert plain.shape == ours.shape
    torch.testing.assert_close(plain, ours, atol=ATOL_PEFT, rtol=0)
    # The adapter matters: the fresh adapter (round 0) gives clearly different logits.
    loaded.load_adapter(run_dir / "adapters" / "round_0")
    fresh = _lifelong_logits(loaded, tiny_batch)
    assert (fresh - ours).abs().max() > 100 * ATOL_PEFT


def test_merged_export_matches_base_plus_adapter(tiny_run, tiny_batch, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    run_dir, loaded, _ = tiny_run
    out = export(run_dir, tmp_path / "merged", round=2, merge=True)
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "README.md", "lineage.json", "lifelong_model.yaml"} <= names
    assert "adapter_config.json" not in names
    assert AutoProcessor.from_pretrained(out).tokenizer.convert_tokens_to_ids("<image>") == loaded.backend.image_token_id

    merged = AutoModelForImageTextToText.from_pretrained(out).eval()
    assert not any("lora_" in n or "modules_to_save" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        m = merged(**_model_inputs(tiny_batch)).logits.float()[:, :-1]
    loaded.load_adapter(run_dir / "adapters" / "round_2")
    torch.testing.assert_close(m, _lifelong_logits(loaded, tiny_batch), atol=ATOL_MERGE, rtol=0)


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_missing_round_fails_and_writes_nothing(tiny_run, tmp_path):
    run_dir, _, _ = tiny_run
    target = tmp_path / "nested" / "exp"
    with pytest.raises(ExportError, match=r"no adapter for round 7; rounds with an adapter: 0, 1, 2"):
        export(run_dir, target, round=7)
    assert _listing(tmp_path) == []


def test_non_empty_out_dir_fails_and_writes_nothing(tiny_run, tmp_path, capsys):
    run_dir, _, _ = tiny_run
    target = tmp_path / "exp"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    before = _listing(tmp_path)
    with pytest.raises(ExportError, match="exists and is not empty"):
        export(run_dir, target)
    assert cli_main(["export", str(run_dir), "--out", str(target), "--merge"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert _listing(tmp_path) == before
    assert (target / "keep.txt").read_text() == "mine"


def test_empty_out_dir_is_used_and_latest_round_is_default(tiny_run, tmp_path, capsys):
    run_dir, _, _ = tiny_run
    target = tmp_path / "exp"
    target.mkdir()
    assert cli_main(["export", str(run_dir), "--out", str(target)]) == 0
    assert "exported adapter" in capsys.readouterr().out
    assert json.loads((target / "lineage.json").read_text())["round"] == 2
    # Without --base-model, the tiny test base gets an identifier no hub accepts.
    assert json.loads((target / "adapter_config.json").read_text())["base_model_name_or_path"] == (
        "lifelong-tiny-llava:seed=0")
    assert [p.name for p in tmp_path.iterdir()] == ["exp"]  # no temporary directory left beside it
