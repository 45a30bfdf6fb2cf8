"""A run's model after any round, rebuilt from its saved adapters.

One implementation for the loop, ``lifelong eval`` and ``lifelong export``:

* ``continue`` policy: the base plus round t's adapter;
* ``merge`` policy: the base with the adapters of rounds 1..t-1 folded in one
  after the other (each fold is the loop's own ``merge_and_restart``), plus
  round t's adapter, which holds round t's delta only.

Moving forward folds only the rounds not folded yet; moving back to an earlier
round under ``merge`` rebuilds the base first.
"""
from __future__ import annotations

from pathlib import Path

from lifelong.layout import RunLayout


class RoundModel:
    """One loaded model, moved to the state after the round asked for.

    ``layout``: the run directory, whose ``adapters/round_<t>`` hold the saved
    adapters (:meth:`RunLayout.has_adapter` says which are usable). ``merge``:
    the run's ``adapter_policy`` is ``merge``.
    """

    def __init__(self, model_cfg, merge: bool, layout: RunLayout):
        self.model_cfg = model_cfg
        self.merge = merge
        self.layout = layout
        self.loaded = None
        self.adapter_round: int | None = None  # whose adapter the model holds now (None: none known)
        self.merged_through = 0  # merge policy: rounds 1..merged_through are folded into the base

    def fresh(self):
        """The model with its freshly initialised adapter: the state before any training (round 0)."""
        if self.loaded is None:
            self._load()
            self.adapter_round = 0
        return self.loaded

    def _load(self) -> None:
        from lifelong.models import load_model

        self.loaded = load_model(self.model_cfg)
        self.adapter_round, self.merged_through = None, 0

    def at(self, t: int):
        """The model as it was after round ``t`` (round 0 without a saved adapter: the fresh adapter).

        Raises FileNotFoundError naming the rounds whose adapters are missing.
        """
        if self.loaded is None or (self.merge and self.merged_through > max(t - 1, 0)):
            self._load()
        folds = range(self.merged_through + 1, t) if self.merge else range(0)
        missing = [i for i in [*folds, t] if not self.layout.has_adapter(i) and i != 0]
        if missing:
            policy = "adapter_policy=merge: " if self.merge else ""
            raise FileNotFoundError(f"{policy}the model after round {t} needs saved adapters that are missing: "
                                    f"rounds {missing} have none")
        for i in folds:
            self.loaded.load_adapter(self.layout.adapter_dir(i))
            self.loaded.merge_and_restart()
            self.merged_through, self.adapter_round = i, None
        if self.adapter_round != t:
            if self.layout.has_adapter(t):
                self.loaded.load_adapter(self.layout.adapter_dir(t))
            elif self.adapter_round is not None:  # round 0 unsaved: only a fresh model holds it
                self._load()
            self.adapter_round = t
        return self.loaded

    def for_training(self, t: int):
        """The model round ``t`` trains: round t-1's, with (merge policy) round t-1 folded in and a fresh adapter."""
        loaded = self.at(t - 1)
        if self.merge and t > 1:
            loaded.merge_and_restart()
            self.merged_through, self.adapter_round = t - 1, None
        return loaded

    def trained(self, t: int) -> None:
        """The model in memory now holds round ``t``'s adapter (it was just trained or saved)."""
        self.adapter_round = t


def load_round_model(run_cfg, run_dir: str | Path, round_: int):
    """The model of a run as it was after round ``round_``, as the run's loop built it.

    ``continue`` policy: the base plus round N's adapter. ``merge`` policy: the
    base with rounds 1..N-1 merged in one after the other, plus round N's
    adapter (which holds round N's delta only). Round 0 without a saved adapter
    is the base model with a fresh (identity) adapter.
    """
    models = RoundModel(run_cfg.model, run_cfg.adapter_policy == "merge", RunLayout(run_dir))
    try:
        return models.at(round_)
    except FileNotFoundError as e:
        raise SystemExit(f"{run_dir}: {e}") from None
