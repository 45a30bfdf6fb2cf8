"""The run's ``seed`` drives every random choice of the loop.

Each choice gets its own seed, a pure function of (run seed, round, purpose,
the stage config's own seed), so

* the same run seed gives the same run, on every process, resumed or not;
* another run seed gives other k-means starts (selection and pruning), CCS draws, random-baseline
  draws, ``random``-expert values, data order and LoRA initialisation;
* every round draws afresh (round t's CCS does not repeat round t-1's draws);
* a stage's own ``seed`` field still counts, so it can be varied alone.

Two choices are deliberately not per round: the sketch projection (docs/design.md:
the same matrix on every process and every round, so sketches of different
rounds live in one space) and the LoRA initialisation of the trained model
and of a proxy scoring model (each is built once per run). The held-out subset (``eval.seed``) does not depend on
the run seed at all: runs that are compared must answer the same questions.
"""
from __future__ import annotations

import copy
import hashlib

# Purposes: the stage field each derived seed replaces.
PER_ROUND = ("score.seed", "select.seed", "select.cluster.seed", "select.ccs.seed", "train.seed", "prune.cluster.seed")
PER_RUN = ("score.sketch.projection.seed", "model.init_seed", "score.model.init_seed")


def derive_seed(seed: int, round_: int, purpose: str, own: int = 0) -> int:
    """A 30-bit seed from (run seed, round, purpose, the stage's own seed).

    faiss takes a C int, and users of a seed add small offsets to it (the
    prune partition adds its split depth), so two bits are left free.
    """
    digest = hashlib.sha256(f"{seed}:{round_}:{purpose}:{own}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 2


def _field(cfg, path: str):
    """(object holding the field, field name); the object is None where an optional slice is unset."""
    *parents, name = path.split(".")
    for p in parents:
        cfg = getattr(cfg, p) if cfg is not None else None
    return cfg, name


def round_config(cfg, t: int):
    """A copy of the run config ``cfg`` whose stage seeds are those of round ``t``."""
    out = copy.deepcopy(cfg)
    for path, round_ in [(p, t) for p in PER_ROUND] + [(p, 0) for p in PER_RUN]:
        obj, name = _field(out, path)
        if obj is None:  # no proxy scoring model configured
            continue
        own = getattr(obj, name)
        if own is None:  # init_seed unset: the model's seed is its own
            own = obj.seed
        setattr(obj, name, derive_seed(cfg.seed, round_, path, own))
    return out
