"""The HF family: image-text-to-text checkpoints (LLaVA-1.5/NeXT/OneVision, Qwen2-VL/2.5-VL, Idefics3/SmolVLM,
Gemma 3) through ``transformers``.

``build.py`` loads a checkpoint (or a tiny model), ``backend.py`` runs it,
``export.py`` exports it, ``tiny.py`` builds the tiny random model of each
architecture (``TINY_BUILDERS``; adding an architecture is one builder there).
"""
from lifelong.models.families import Family, register
from lifelong.models.families.hf.export import HFExport


def backend() -> type:
    from lifelong.models.families.hf.backend import HFBackend

    return HFBackend


FAMILY = register(Family("hf", backend=backend, export=HFExport))
