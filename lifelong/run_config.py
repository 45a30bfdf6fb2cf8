"""The run config: every stage's config slice, composed; what ``config.yaml`` holds.

Each slice is the dataclass that lives beside its stage's code; a YAML file in
``configs/`` holds only what differs from these defaults, and ``key.sub=value``
overrides on the command line are type-checked against the same classes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from lifelong.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict
from lifelong.data.ingest import IngestConfig
from lifelong.data.stream.config import StreamConfig
from lifelong.evaluation.evaluate import EvalConfig
from lifelong.evaluation.trackers import TrackerConfig
from lifelong.layout import RunLayout, write_atomic
from lifelong.models.config import ModelConfig
from lifelong.pruning.semdedup import PruneConfig
from lifelong.selection.score import ScoreConfig
from lifelong.selection.strategies import SelectConfig
from lifelong.training.train import TrainConfig


@dataclass
class DatasetEntry:
    """One dataset of a user stream, in arrival order.

    train / test: files or folders in any supported format (test may be empty:
    the task is then not evaluated). metric: answer metric of the task.
    """

    name: str
    train: str
    test: str = ""
    metric: str = "exact_match"
    format: str | None = None


@dataclass
class StreamSpec:
    """Where the datasets come from.

    builtin: prepare the built-in offline stream at this scale into
        ``<run>/data`` (``small``/``full``); ``none`` = use ``datasets`` only.
    datasets: user datasets in arrival order (after the built-in ones).
    """

    builtin: Literal["small", "full", "none"] = "small"
    seed: int = 0
    builtin_config: StreamConfig = field(default_factory=StreamConfig)
    datasets: list[DatasetEntry] = field(default_factory=list)


@dataclass
class RunConfig:
    """A lifelong run: a stream of datasets, one round per arrival.

    seed: drives every random choice of the run (k-means, CCS, random
        baselines, the random expert, data order, LoRA initialisation, the
        sketch projection), each from (seed, round, purpose); see
        ``lifelong/seeding.py``. The held-out questions (``eval.seed``) do not
        depend on it, so runs of different seeds answer the same questions.

    adapter_policy: ``continue`` trains one adapter across rounds; ``merge``
        folds each round's adapter into the base weights and trains a fresh one
        the next round (``adapters/round_<t>`` then holds round t's delta only;
        the model after round t is the base with rounds 1..t-1 merged plus it).
    """

    name: str = "run"
    runs_dir: Path = Path("runs")
    seed: int = 0
    stream: StreamSpec = field(default_factory=StreamSpec)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    adapter_policy: Literal["continue", "merge"] = "continue"

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name


def load_run_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """A config file (or a run directory holding ``config.yaml``) plus overrides."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        data = load_yaml(RunLayout(path).config if path.is_dir() else path)
    return from_dict(RunConfig, apply_overrides(data, overrides or []))


def dump_run_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def save_run_config(cfg: RunConfig) -> Path:
    """Write ``cfg`` as its run directory's ``config.yaml``, atomically (a reader never sees half a file)."""
    path = RunLayout(cfg.run_dir).config
    write_atomic(path, dump_run_config(cfg))
    return path


def check_same_config(saved: str, cfg: RunConfig, force: bool) -> None:
    """Refuse to resume a run under a different config unless forced."""
    new = dump_run_config(cfg)
    if saved == new or force:
        return
    old = yaml.safe_load(saved)
    cur = yaml.safe_load(new)
    diffs = sorted(_diff(old, cur))
    raise ConfigError(
        "this run directory was started with a different config; differing keys: "
        + ", ".join(diffs[:10]) + (" ..." if len(diffs) > 10 else "")
        + " (use --force to resume anyway, or choose another run name)"
    )


def _diff(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            yield from _diff(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
    elif a != b:
        yield prefix
