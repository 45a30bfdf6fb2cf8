"""What an export does per model family: one profile, chosen once from ``ModelConfig.family``.

Each profile answers, from the run's model config alone: the base id written
to ``adapter_config.json``, the model card's hub ``base_model`` and its note on
the base, the loader snippet the card shows, how merged weights are saved, and
how a merged export is loaded back. A profile lives in its family's folder
(``lifelong/models/families/<name>/export.py``) and is registered there with
the family's backend (:data:`lifelong.models.families.FAMILIES`); profiles are
separate from backends because they need no built model (a backend is made
with one) and because importing them must not import torch (export's card and
checks run without it).
"""
from __future__ import annotations

from lifelong.models.families import FAMILIES, LIFELONG_LOADER, ExportError

__all__ = ["ExportError", "LIFELONG_LOADER", "export_profile"]


def export_profile(model_cfg):
    """The export profile of ``model_cfg.family``; an unknown family is an :class:`ExportError`."""
    try:
        family = FAMILIES[model_cfg.family]
    except KeyError:
        raise ExportError(f"model.family {model_cfg.family!r} has no export profile; "
                          f"known families: {', '.join(sorted(FAMILIES))}") from None
    return family.export(model_cfg)
