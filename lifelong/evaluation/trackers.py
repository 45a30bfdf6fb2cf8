"""Scalars of a run (round metrics, training loss, stage times, pool sizes) to experiment trackers.

Trackers are accelerate's (``accelerate.tracking``): TensorBoard by default,
or any name accelerate knows (``wandb``, ``mlflow``, ``aim``, ``comet_ml``,
``dvclive``, ``trackio``, ``swanlab``, ``all``) when its package is installed.
Like accelerate, only the main process writes.

:class:`Tracker` either uses the trackers of an ``Accelerator`` the caller
already initialised (``accelerator.init_trackers``), or builds its own from
:class:`TrackerConfig` exactly as ``Accelerator.init_trackers`` does, without
creating an ``Accelerator``: one would fix accelerate's process-wide state
(mixed precision, device) before training creates its own, and its
``end_training`` also tears down the distributed process group.

Tags: ``train/loss`` (per optimiser step), and per round (step = round):
``cl/<metric>`` (every CL metric of :mod:`lifelong.evaluation.metrics` on the
accuracy-matrix prefix up to that round), ``acc/<task>``, ``pool/size``,
``pool/selected``, ``pool/pruned`` and ``seconds/<stage>``.
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from lifelong.layout import RunLayout


@dataclass
class TrackerConfig:
    """Where run scalars go.

    ``log_with``: accelerate tracker names (empty = log nowhere).
    ``project_dir``: their log directory; None = ``<run>/metrics/tb``, a
    relative path is taken under the run directory. Each run writes into
    ``<project_dir>/<run name>/``. ``init_kwargs``: per-tracker keyword
    arguments, e.g. ``{"tensorboard": {"flush_secs": 30}}`` or
    ``{"wandb": {"tags": ["demo"]}}``.
    """

    log_with: list[str] = field(default_factory=lambda: ["tensorboard"])
    project_dir: Optional[Path] = None
    init_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)


def clean_scalars(values: dict) -> dict:
    """Values a tracker can take: Python int/float (from numpy too) and str; None and non-finite are dropped.

    A NaN is "undefined" here (forgetting after round 1, a task without
    held-out samples); a tracker should show no point rather than a NaN one.
    """
    out = {}
    for k, v in values.items():
        if v is None:
            continue
        if isinstance(v, str):
            out[k] = v
            continue
        if isinstance(v, (bool, np.bool_)):
            out[k] = int(v)
            continue
        if isinstance(v, numbers.Integral):
            out[k] = int(v)
            continue
        if isinstance(v, numbers.Real):
            v = float(v)
            if math.isfinite(v):
                out[k] = v
            continue
        raise TypeError(f"tracker value {k!r} must be a number or a string, got {type(v).__name__}")
    return out


def round_scalars(history, round_: int, reference=None) -> dict[str, float]:
    """The per-round scalars of ``history`` (a ``RunHistory``) after round ``round_`` (0 = before training).

    ``cl/<metric>``: each registered CL metric on accuracy-matrix rows
    ``0 .. round_`` (relative gain only with a ``reference`` row); ``acc/<task>``:
    row ``round_``, one tag per task (column); plus the round record's pool counts and stage seconds
    when the round has one. Undefined values come back as NaN
    (:meth:`Tracker.log` drops them).
    """
    from lifelong.evaluation.metrics import METRICS

    a = history.accuracy_matrix()
    if not 0 <= round_ < a.shape[0]:
        raise IndexError(f"round {round_} has no accuracy row (rows 0..{a.shape[0] - 1})")
    prefix = a[: round_ + 1]
    out: dict[str, float] = {}
    for name, met in METRICS.items():
        if met.needs_reference and reference is None:
            continue
        out[f"cl/{name}"] = float(met.fn(prefix, reference, history.learned()))
    for task, acc in zip(history.tasks, a[round_]):
        out[f"acc/{task}"] = float(acc)
    for rec in history.rounds:
        if rec.round == round_:
            out["pool/size"] = rec.pool_size
            out["pool/selected"] = rec.selected
            out["pool/pruned"] = rec.pruned
            for stage, seconds in rec.stage_seconds.items():
                out[f"seconds/{stage}"] = seconds
    return out


def flat_hparams(config: dict, prefix: str = "") -> dict:
    """A nested config dict as ``{"a.b": value}`` with values bool/int/float/str (others as their str)."""
    out = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_hparams(v, key + "."))
        elif isinstance(v, (bool, int, float, str)):
            out[key] = v
        else:
            out[key] = str(v)
    return out


class Tracker:
    """Logs scalar dicts at integer steps to the configured accelerate trackers.

    ``run_dir``: the run directory (the default log directory is under it);
    ``run_name``: the run's name in the trackers; ``accelerator``: an
    ``Accelerator`` whose trackers are already initialised is logged through
    (its configuration wins over ``cfg``, and :meth:`close` leaves them to the
    caller's ``end_training``); otherwise trackers are built from ``cfg``.
    ``hparams``: a (nested) config dict stored as the run's hyperparameters.
    """

    def __init__(self, cfg: TrackerConfig, run_dir: str | Path, run_name: str, accelerator=None,
                 hparams: Optional[dict] = None):
        self.cfg = cfg
        self.run_name = run_name
        project_dir = Path(cfg.project_dir) if cfg.project_dir is not None else RunLayout(run_dir).tensorboard
        self.project_dir = project_dir if project_dir.is_absolute() else Path(run_dir) / project_dir
        self._accelerator = accelerator if accelerator is not None and accelerator.trackers else None
        self.trackers = [] if self._accelerator is not None else self._build(hparams)
        self._closed = False

    def _build(self, hparams: Optional[dict]) -> list:
        from accelerate import PartialState
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS, GeneralTracker, filter_trackers

        if not self.cfg.log_with:
            return []
        # accelerate's trackers and logging need the process state (which rank
        # is the main one); PartialState fixes no precision or device choice,
        # so an Accelerator made later is free to.
        PartialState()
        chosen = filter_trackers(list(self.cfg.log_with), self.project_dir)
        names = {str(t) for t in chosen}
        missing = [n for n in self.cfg.log_with if n != "all" and n not in names]
        if missing:
            warnings.warn(f"tracker(s) {missing} not installed; logging to {sorted(names) or 'nothing'}", stacklevel=3)
        trackers = []
        for t in chosen:
            if isinstance(t, GeneralTracker):
                trackers.append(t)
                continue
            cls = LOGGER_TYPE_TO_CLASS[str(t)]
            kwargs = self.cfg.init_kwargs.get(str(t), {})
            if cls.requires_logging_directory:
                self.project_dir.mkdir(parents=True, exist_ok=True)
                trackers.append(cls(self.run_name, self.project_dir, **kwargs))
            else:
                trackers.append(cls(self.run_name, **kwargs))
        for tr in trackers:
            tr.start()
        if hparams:
            flat = flat_hparams(hparams)
            for tr in trackers:
                tr.store_init_configuration(flat)
        return trackers

    @property
    def log_dir(self) -> Path:
        """Where a directory-based tracker (TensorBoard) of this run writes: ``<project_dir>/<run name>``."""
        if self._accelerator is not None:
            return Path(self._accelerator.logging_dir) / self.run_name
        return self.project_dir / self.run_name

    def log(self, values: dict, step: int) -> dict:
        """Log ``{tag: value}`` at ``step``; returns what was logged (see :func:`clean_scalars`)."""
        if self._closed:
            raise RuntimeError("tracker is closed")
        clean = clean_scalars(values)
        if not clean:
            return clean
        if self._accelerator is not None:
            self._accelerator.log(clean, step=int(step))
        else:
            for tr in self.trackers:
                tr.log(clean, step=int(step))
        return clean

    def log_round(self, history, round_: int, reference=None) -> dict:
        """Log :func:`round_scalars` of round ``round_`` at step ``round_``."""
        return self.log(round_scalars(history, round_, reference), step=round_)

    def log_loss(self, losses) -> None:
        """Log ``[(step, loss), ...]`` as ``train/loss`` (e.g. a ``RoundRecord.train_loss``)."""
        for step, loss in losses:
            self.log({"train/loss": loss}, step=int(step))

    def close(self) -> None:
        """Finish the trackers this object built (idempotent); an accelerator's trackers are left to it."""
        if self._closed:
            return
        self._closed = True
        for tr in self.trackers:
            tr.finish()

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
