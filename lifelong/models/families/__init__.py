"""VLM families: one folder each, registered once.

A family is a folder ``lifelong/models/families/<name>/``:

- ``__init__.py`` registers its :class:`Family` under the name ``model.family`` selects;
- ``backend.py``: how images become text, tokens and tensors, and how the model
  runs (the interface is described in :mod:`lifelong.models.backends`);
- ``export.py``: its export profile, what ``lifelong export`` does for it
  (base id, model card, loader snippet, merged weights);
- its tiny random test models, where it builds them itself (``hf/tiny.py``).

:data:`FAMILIES` is the one list of families: every folder here registers
itself when this package is imported, and both the model loader
(:mod:`lifelong.models.loaded`) and the export (:mod:`lifelong.export.families`)
read it, and the config check accepts the folders' names as ``model.family``
(:data:`lifelong.models.config.FamilyName`). Adding a family is adding its
folder (and its rows in the family tests).

Importing this package does not import torch: a backend is imported when a
model is built, an export profile needs no built model.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Callable

LIFELONG_LOADER = (
    "# The base model exists inside lifelong only: rebuild it from lifelong_model.yaml.\n"
    "from lifelong.export import load_exported\n"
    'loaded = load_exported("path/to/this/dir")  # a LoadedModel: .model, .generate(samples, image_loader)'
)


class ExportError(ValueError):
    """An export that cannot be made; nothing was written."""


@dataclasses.dataclass(frozen=True)
class Family:
    """A VLM family: ``backend()`` returns its backend class, built as ``cls(model_cfg, device, dtype)``
    (imported on first use, as backends need torch); ``export`` is its export profile class,
    built as ``export(model_cfg)``."""

    name: str
    backend: Callable[[], type]
    export: type


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` to :data:`FAMILIES` (a name registered twice is an error)."""
    if family.name in FAMILIES:
        raise ValueError(f"model family {family.name!r} is registered twice")
    FAMILIES[family.name] = family
    return family


for _folder in pkgutil.iter_modules(__path__):  # every family folder registers itself
    importlib.import_module(f"{__name__}.{_folder.name}")
