"""The defect flags of the built-in streams' provenance, read one way for both streams.

Only yardstick strategies (``oracle``) may read them: they say what a perfect
selector would know and a real one cannot.

- messy stream: ``provenance.defect`` (one of ``DEFECTS`` or null) and
  ``provenance.group`` (copy group: a copied record and its near-copies).
- clean stream: ``provenance.noise`` (``mislabeled`` -> ``wrong_label``,
  ``ungrounded`` -> ``irrelevant_image``: its image is uniform noise) and
  ``provenance.duplicate_of`` (a ``near_copy`` of that record; the group is the
  copied record's id, which is every record's ``source_id`` in the pool).
"""
from __future__ import annotations

DEFECTS = ("near_copy", "wrong_label", "swapped_image", "irrelevant_image", "dominant_answer")
_CLEAN_NOISE = {"mislabeled": "wrong_label", "ungrounded": "irrelevant_image"}


def defect_of(provenance: dict) -> tuple[str | None, str | None]:
    """(defect kind or None, copy group or None) of one record's provenance; (None, None) for
    records from outside the built-in streams."""
    if provenance.get("stream") == "messy":
        return provenance.get("defect"), provenance.get("group")
    if provenance.get("duplicate_of"):
        return "near_copy", provenance["duplicate_of"]
    noise = provenance.get("noise")
    kind = _CLEAN_NOISE.get(noise, noise) if noise else None
    # A clean-stream record is the group of its own near-copies (they name it in duplicate_of).
    group = provenance.get("source_id") if "duplicate_of" in provenance else None
    return kind, group
