"""Out of a run: adapter export, model cards, lineage and per-round data cards.

- :func:`export`: a round's adapter or merged weights (``lifelong export``, :mod:`lifelong.commands.export`).
- :func:`load_exported`: load an export whose base exists only inside lifelong.
- :func:`write_round_card`: ``<run>/data_cards/round_<t>.md`` (the loop's report stage writes it;
  it lives in :mod:`lifelong.evaluation.data_card`).
- :func:`build_lineage`: which data trained the adapter of a round.

Importing this package does not import torch.
"""
from lifelong.evaluation.data_card import write_round_card
from lifelong.export.adapter import ExportError, export, load_exported
from lifelong.export.lineage import build_lineage

__all__ = ["ExportError", "build_lineage", "export", "load_exported", "write_round_card"]
