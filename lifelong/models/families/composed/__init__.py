"""The composed family: frozen vision encoder -> MLP projector -> causal LM, built by ``lifelong`` itself.

The model is :mod:`lifelong.models.composed` (the stage-1 alignment of
:mod:`lifelong.models.align` builds it too); ``backend.py`` runs it,
``export.py`` exports it. Its tiny test model is ``composed.vision/lm: tiny``.
"""
from lifelong.models.families import Family, register
from lifelong.models.families.composed.export import ComposedExport


def backend() -> type:
    from lifelong.models.families.composed.backend import ComposedBackend

    return ComposedBackend


FAMILY = register(Family("composed", backend=backend, export=ComposedExport))
