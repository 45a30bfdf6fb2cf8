"""The export profile is chosen by ``model.family``; an unknown family is refused by name."""
from __future__ import annotations

import dataclasses

import pytest

from lifelong.export.families import LIFELONG_LOADER, ExportError, export_profile
from lifelong.models.config import HFConfig, tiny_model_config
from lifelong.models.families.composed.export import ComposedExport
from lifelong.models.families.hf.export import HFExport


def test_profile_is_chosen_by_family(tmp_path):
    composed = export_profile(tiny_model_config(tmp_path, "composed"))
    hf = export_profile(tiny_model_config(tmp_path, "hf"))
    assert type(composed) is ComposedExport and type(hf) is HFExport
    assert composed.base_id() == "lifelong-composed:tiny+tiny"
    assert hf.base_id() == "lifelong-tiny-llava:seed=0"
    # A colon marks a base that exists only inside lifelong: no hub id, lifelong's loader.
    assert hf.card_base_model(hf.base_id()) is None
    assert hf.loader_snippet(hf.base_id(), merged=False) == LIFELONG_LOADER
    assert composed.card_base_model(composed.base_id()) is None  # the tiny LM has no hub id
    assert hf.base_note() is None and "Frozen vision encoder `tiny`" in composed.base_note()


def test_hf_profile_names_a_hub_base_and_a_local_one(tmp_path):
    hub = export_profile(tiny_model_config(tmp_path, "hf", hf=HFConfig(path="org/vlm")))
    assert hub.base_id() == hub.card_base_model("org/vlm") == "org/vlm"
    assert 'from_pretrained("org/vlm")' in hub.loader_snippet("org/vlm", merged=False)
    local = export_profile(tiny_model_config(tmp_path, "hf", hf=HFConfig(path=str(tmp_path))))
    assert local.base_id() == str(tmp_path.resolve())
    assert local.card_base_model(local.base_id()) is None  # a local path is no hub id


def test_unknown_family_is_refused_with_the_known_ones():
    cfg = dataclasses.replace(tiny_model_config("unused"), family="gguf")
    with pytest.raises(ExportError, match=r"model.family 'gguf' has no export profile; known families: composed, hf"):
        export_profile(cfg)
