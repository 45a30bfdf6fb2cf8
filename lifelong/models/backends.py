"""Family backends: how images become text, tokens and tensors, and how a model is run.

``LoadedModel`` (loaded.py) is written once over this interface:

- ``chat``: a ``ChatEncoder`` whose template writes ``placeholder`` per image.
- ``prepare_images(keys, load, blank)`` -> (one expansion string per image,
  the sample's image payload): the text that replaces each placeholder (image
  tokens and whatever the family writes around them) and the tensors the model
  needs for them. Payloads are per *sample*, because some families expand a
  sample's images jointly (LLaVA-OneVision: one image gets anyres tiles,
  several get one base view each).
- ``batch_images(payloads)`` -> batch tensors; ``token_types(input_ids)`` ->
  per-token tensors some families need, built from the padded (B, T) ids.
- ``decoder``, ``head``, ``hidden``, ``generate``: running the model.

Each family's backend lives in its folder (``lifelong/models/families/<name>/backend.py``)
and is registered there (:data:`lifelong.models.families.FAMILIES`, keyed by
``ModelConfig.family``).
"""
from __future__ import annotations

from typing import Callable

ImageLoader = Callable[[str], object]  # image content hash -> RGB PIL image (e.g. ``Pool.load_image``)
