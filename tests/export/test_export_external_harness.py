"""A merged export, used as an external harness (lmms-eval, VLMEvalKit) uses a model: Auto classes, generate."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from lifelong.data.pool import Pool
from lifelong.cli import main as cli_main

MAX_NEW_TOKENS = 8

# What a harness does with a model directory: the Auto classes, the processor's chat template, greedy generate.
HARNESS = textwrap.dedent(
    """
    import json, sys
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model_dir, image_path, question, max_new_tokens, out_path = sys.argv[1:6]
    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, local_files_only=True).eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[prompt], images=[Image.open(image_path).convert("RGB")], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=int(max_new_tokens), do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:]
    text = processor.batch_decode(new[None], skip_special_tokens=True)[0].strip()
    json.dump({"new_tokens": len(new), "text": text}, open(out_path, "w"))
    assert not any(m == "lifelong" or m.startswith("lifelong.") for m in sys.modules), "lifelong was imported"
    """
)


def test_merged_export_generates_in_plain_transformers(tiny_run, tmp_path, capsys):
    run_dir, loaded, _ = tiny_run
    out = tmp_path / "merged"
    assert cli_main(["export", str(run_dir), "--round", "2", "--out", str(out), "--merge"]) == 0
    capsys.readouterr()

    with Pool(run_dir / "pool") as pool:
        (sample,) = pool.get(["s0"])
        image_path = tmp_path / "s0.png"
        pool.load_image(sample.images[0]).save(image_path)
        loaded.load_adapter(run_dir / "adapters" / "round_2")
        ours = loaded.generate([sample], pool.load_image, max_new_tokens=MAX_NEW_TOKENS)[0]
    question = sample.prompt_and_answer()[0]
    assert question.startswith("<image>")  # the harness puts the image where the sample has it
    question = question[len("<image>"):]

    script = tmp_path / "harness.py"
    script.write_text(HARNESS)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    args = [str(out), str(image_path), question, str(MAX_NEW_TOKENS), str(tmp_path / "o.json")]
    res = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads((tmp_path / "o.json").read_text())
    assert got["new_tokens"] >= 1
    # Same prompt, same weights (merged once in float32), greedy: the answer lifelong's eval would score.
    assert ours and got["text"] == ours
