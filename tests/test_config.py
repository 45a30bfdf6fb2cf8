"""Typed configs: every shipped file loads; unknown keys and wrong types name the key."""
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lifelong.config import ConfigError, apply_overrides, from_dict, load_config
from lifelong.models.config import ModelConfig
from lifelong.run_config import RunConfig, dump_run_config, load_run_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_run_config_loads_and_round_trips(path, tmp_path):
    cfg = load_run_config(path)
    assert isinstance(cfg, RunConfig)
    saved = tmp_path / "config.yaml"
    saved.write_text(dump_run_config(cfg))
    assert load_run_config(saved) == cfg


@pytest.mark.parametrize("path", sorted((CONFIGS / "models").glob("*.yaml")), ids=lambda p: p.name)
def test_every_model_preset_loads(path):
    assert isinstance(load_config(ModelConfig, path), ModelConfig)


@dataclass
class Inner:
    lr: float = 0.1
    layers: list[int] = field(default_factory=lambda: [1])
    name: str | None = None


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    steps: int = 3
    flag: bool = False


def test_overrides_are_typed():
    data = apply_overrides({}, ["inner.lr=1e-3", "inner.layers=[2, 3]", "steps=7", "flag=true", "inner.name=null"])
    cfg = from_dict(Outer, data)
    assert cfg == Outer(Inner(1e-3, [2, 3], None), 7, True)
    assert from_dict(Outer, {"inner": {"lr": 2}}).inner.lr == 2.0  # int -> float is lossless


@pytest.mark.parametrize("data, message", [
    ({"inner": {"lrr": 1}}, "unknown config key inner.lrr"),
    ({"stepz": 1}, "unknown config key stepz"),
    ({"steps": "many"}, "steps: expected an integer"),
    ({"steps": 1.5}, "steps: expected an integer"),
    ({"flag": "yes"}, "flag: expected true/false"),
    ({"inner": {"layers": [1, "x"]}}, "inner.layers[1]: expected an integer"),
    ({"inner": 3}, "inner: expected a mapping"),
])
def test_bad_keys_and_types_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        from_dict(Outer, data)


def test_run_config_errors_through_the_cli(capsys):
    from lifelong.cli import main

    assert main(["run", str(CONFIGS / "smoke.yaml"), "train.lrr=1"]) == 2
    assert "unknown config key train.lrr" in capsys.readouterr().err
    assert main(["run", str(CONFIGS / "smoke.yaml"), "select.budget.fraction=lots"]) == 2
    assert "select.budget.fraction" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not of the form"):
        apply_overrides({}, ["novalue"])
