"""ModelConfig: light to import, strict to load, shipped presets valid."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lifelong.config import ConfigError, from_dict, load_config
from lifelong.models.config import CACHE_ENV, ModelConfig, default_cache_dir

ROOT = Path(__file__).resolve().parents[2]


def test_config_imports_without_torch():
    code = "import sys; from lifelong.models import ModelConfig; ModelConfig(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_from_dict_nested_and_strict():
    cfg = from_dict(
        ModelConfig,
        {"family": "hf", "hf": {"tiny": True}, "lora": {"rank": 4, "layers": [0, 2]}, "system_prompt": ""},
    )
    assert cfg.family == "hf" and cfg.hf.tiny and cfg.lora.layers == [0, 2] and cfg.system_prompt == ""
    assert cfg.composed.vision == "efficientnet_lite0"  # untouched defaults
    with pytest.raises(ConfigError, match="lora.rnk"):
        from_dict(ModelConfig, {"lora": {"rnk": 4}})
    with pytest.raises(ConfigError, match="composed.vision"):
        from_dict(ModelConfig, {"composed": {"vision": "resnet"}})


def test_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert default_cache_dir() == tmp_path
    assert ModelConfig().cache_dir == tmp_path
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir() == Path("~/.cache/lifelong").expanduser()


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "models").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_model_presets_load(path):
    load_config(ModelConfig, path)
