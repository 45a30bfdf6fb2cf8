"""Every VLM family is one folder under lifelong/models/families/, registered once; the model loader
and the export both read that registry (a contract test over every registered family)."""
from __future__ import annotations

import dataclasses
import pkgutil
import subprocess
import sys
import typing

import pytest

import lifelong.models.families as families
from lifelong.export.families import export_profile
from lifelong.models.config import FamilyName, tiny_model_config
from lifelong.models.families import FAMILIES, Family, register

BACKEND_API = ("decoder", "head", "prepare_images", "batch_images", "token_types", "hidden", "generate")
EXPORT_API = ("base_id", "card_base_model", "base_note", "loader_snippet", "save_merged", "load_merged")


def test_every_family_folder_registers_itself_and_is_a_config_value():
    assert list(FAMILIES) == [m.name for m in pkgutil.iter_modules(families.__path__)]
    assert typing.get_args(FamilyName) == tuple(FAMILIES)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_contract(name, tmp_path):
    family = FAMILIES[name]
    backend = family.backend()
    assert [k for k in BACKEND_API if not callable(getattr(backend, k, None))] == []
    profile = export_profile(tiny_model_config(tmp_path, name))
    assert type(profile) is family.export
    assert [k for k in EXPORT_API if not callable(getattr(profile, k, None))] == []
    assert isinstance(profile.base_id(), str) and profile.base_id()


def test_a_registered_family_reaches_the_export(monkeypatch, tmp_path):
    class ToyExport:
        def __init__(self, model_cfg):
            self.cfg = model_cfg

    monkeypatch.setitem(FAMILIES, "toy", Family("toy", backend=lambda: object, export=ToyExport))
    cfg = dataclasses.replace(tiny_model_config(tmp_path), family="toy")
    assert type(export_profile(cfg)) is ToyExport


def test_a_family_registered_twice_is_refused():
    with pytest.raises(ValueError, match="'hf' is registered twice"):
        register(Family("hf", backend=lambda: object, export=object))


def test_the_registry_and_the_export_profiles_import_no_torch():
    code = ("import sys, lifelong.models.families, lifelong.export.families; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
