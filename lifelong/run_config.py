"""The run config: every stage's config slice, composed; what ``config.yaml`` holds.

Each slice is the dataclass that lives beside its stage's code; a YAML file in
``configs/`` holds only what differs from these defaults, and ``key.sub=value``
overrides on the command line are type-checked against the same classes.
"""
from __future__ import annotations

import dataclasses
import typing
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
    images: the folder the records' image paths are relative to (default: the
        folder of the file that names them); a benchmark's instruction files
        often sit apart from its image folders.
    expected: record counts the dataset should have, per split (``train``,
        ``test``): ``lifelong data check`` reports any other count. Empty = not checked.
    """

    name: str
    train: str
    test: str = ""
    metric: str = "exact_match"
    format: str | None = None
    images: str = ""
    expected: dict[str, int] = field(default_factory=dict)


@dataclass
class StreamSpec:
    """Where the datasets come from.

    builtin: prepare the built-in offline stream at this scale into
        ``<run>/data`` (``small``/``full``); ``none`` = use ``datasets`` only;
        ``auto`` (default) = ``small`` when ``datasets`` is empty, else ``none``.
    datasets: user datasets in arrival order (after the built-in ones).
    """

    builtin: Literal["auto", "small", "full", "none"] = "auto"
    seed: int = 0
    builtin_config: StreamConfig = field(default_factory=StreamConfig)
    datasets: list[DatasetEntry] = field(default_factory=list)

    def __post_init__(self):
        # ``auto``: the built-in stream only when the config names no datasets of its
        # own (a user's stream should not silently start with 7 demo rounds). Resolved
        # here, so config.yaml records the choice and later arrivals do not change it.
        if self.builtin == "auto":
            self.builtin = "none" if self.datasets else "small"


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
    data_root: Path | None = None

    def __post_init__(self):
        # data_root: the folder that relative dataset paths (train, test, images) are read from;
        # unset, they are read from the current folder. Resolved here, so config.yaml records
        # absolute paths and a resumed run reads the same files from any folder.
        if self.data_root is not None:
            self.data_root = Path(self.data_root).absolute()
            self.stream.datasets = [resolve_paths(e, self.data_root) for e in self.stream.datasets]

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name


def resolve_paths(entry: DatasetEntry, root: Path) -> DatasetEntry:
    """``entry`` with its relative ``train``, ``test`` and ``images`` paths made absolute under ``root``."""
    def under(path: str) -> str:
        return str(root / path) if path and not Path(path).is_absolute() else path

    return dataclasses.replace(entry, train=under(entry.train), test=under(entry.test), images=under(entry.images))


def load_run_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """A config file (or a run directory holding ``config.yaml``) plus overrides.

    A section may be given as a YAML file holding just that section: ``model:
    ../models/tiny.yaml`` in a config file (relative to that file), or the
    override ``model=configs/models/tiny.yaml`` (relative to the current
    folder). The file's mapping replaces the section; later ``model.x=...``
    overrides apply on top of it.
    """
    data: dict = {}
    if path is not None:
        path = Path(path)
        if path.is_dir() and not RunLayout(path).config.exists():
            raise ConfigError(f"{path} is a folder but not a run directory (no config.yaml); "
                              "give a config file (configs/*.yaml) or a run directory")
        file = RunLayout(path).config if path.is_dir() else path
        data = load_yaml(file)
        for key in SECTIONS:
            if _is_yaml_path(data.get(key)):
                data[key] = _section_file(key, file.parent / data[key])
    for text in overrides or []:
        key, _, raw = text.partition("=")
        if key.strip() in SECTIONS and _is_yaml_path(raw.strip()):
            data[key.strip()] = _section_file(key.strip(), Path(raw.strip()))
        else:
            data = apply_overrides(data, [text])
    return from_dict(RunConfig, data)


# Top-level keys of RunConfig that are sections (one stage's dataclass): each may come from its own file.
SECTIONS = tuple(name for name, tp in typing.get_type_hints(RunConfig).items() if dataclasses.is_dataclass(tp))


def _is_yaml_path(value) -> bool:
    return isinstance(value, str) and value.lower().endswith((".yaml", ".yml"))


def _section_file(key: str, path: Path) -> dict:
    """The mapping in ``path``, which holds section ``key`` of a run config."""
    if not path.is_file():
        raise ConfigError(f"{key}: section file {path} does not exist")
    return load_yaml(path)


def dump_run_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def save_run_config(cfg: RunConfig) -> Path:
    """Write ``cfg`` as its run directory's ``config.yaml``, atomically (a reader never sees half a file)."""
    path = RunLayout(cfg.run_dir).config
    write_atomic(path, dump_run_config(cfg))
    return path
