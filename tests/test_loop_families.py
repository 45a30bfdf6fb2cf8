"""The whole loop with each tiny HF family, and with a proxy model scoring for the trained one."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from lifelong.cli import main
from lifelong.models.families.hf.tiny import TINY_BUILDERS

pytestmark = pytest.mark.e2e  # a whole run of the loop: in the default suite (-m 'not e2e' leaves it out)

ROOT = Path(__file__).resolve().parents[1]
PROXY = {"family": "composed", "composed": {"vision": "tiny", "lm": "tiny", "image_size": 32},
         "system_prompt": "", "max_length": 256, "lora": {"rank": 4, "alpha": 8, "dropout": 0.0}}


def _config(tmp_path: Path, family: str, proxy: bool) -> Path:
    """configs/smoke.yaml cut to two short datasets, the model a tiny ``family``."""
    cfg = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())
    cfg["name"] = f"loop-{family}"
    cfg["runs_dir"] = str(tmp_path)
    cfg["stream"]["builtin_config"] = {"order": ["vqa_color", "text_only"], "small_train": 12, "small_test": 4}
    cfg["model"] = {"family": "hf", "hf": {"tiny": family}, "system_prompt": "", "max_length": 256,
                    "lora": {"rank": 4, "alpha": 8, "dropout": 0.0}}
    cfg["select"]["cluster"]["k"] = 2
    cfg["prune"]["cap"] = 16
    cfg["eval"]["max_samples_per_task"] = 4
    if proxy:
        cfg["score"]["model"] = PROXY
    path = tmp_path / f"{family}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _check_run(run: Path, family: str) -> dict:
    hist = json.loads((run / "metrics/history.json").read_text())
    assert hist["tasks"] == ["vqa_color", "text_only"] and len(hist["accuracy"]) == 3
    for t in (1, 2):
        model = json.loads((run / f"adapters/round_{t}/lifelong_model.json").read_text())
        assert model["family"] == "hf" and model["hf"]["tiny"] == family
    assert (run / "rounds/2/score/columns/embed.npy").exists()  # the last round's store; round 1's is deleted
    assert not (run / "rounds/1/score/columns").exists() and not (run / "rounds/2/score/shards").exists()
    return hist


def test_loop_trains_qwen2_5_vl_while_a_composed_proxy_scores(tmp_path):
    """Scores, sketches and pruning embeddings come from the proxy; the adapters are Qwen2.5-VL's."""
    from lifelong.config import from_dict
    from lifelong.data.pool import Pool
    from lifelong.models import ModelConfig, load_model
    from lifelong.selection.score import ScoreConfig, embed_samples

    assert main(["run", str(_config(tmp_path, "qwen2_5_vl", proxy=True))]) == 0
    run = tmp_path / "loop-qwen2_5_vl"
    _check_run(run, "qwen2_5_vl")
    assert "q_proj" in json.loads((run / "adapters/round_1/adapter_config.json").read_text())["target_modules"]
    # Round 2's stored embeddings are the proxy's own (a fresh composed model), not the trained model's.
    from lifelong.selection.score_store import open_scores

    res = open_scores(run / "rounds/2/score/columns")
    ids, stored = res.ids, np.asarray(res.embeddings, dtype=np.float32)
    proxy = load_model(from_dict(ModelConfig, PROXY))
    with Pool(run / "pool") as pool:
        by_id = {s.id: s for s in pool.samples()}
        present = [i for i, x in enumerate(ids) if x in by_id]
        assert present
        want = embed_samples(proxy, [by_id[ids[i]] for i in present], pool.load_image, ScoreConfig(), progress=False)
    np.testing.assert_allclose(stored[present], want, atol=2e-3)


@pytest.mark.slow
@pytest.mark.parametrize("family", [f for f in TINY_BUILDERS if f != "qwen2_5_vl"])
def test_loop_runs_every_family(tmp_path, family):
    assert main(["run", str(_config(tmp_path, family, proxy=False))]) == 0
    _check_run(tmp_path / f"loop-{family}", family)
