"""What a run config must satisfy, checked before anything is written: every value's range, the
run's name, metric names, every dataset's paths and splits; and what a resumed run may not change.

:func:`check_run_config` runs at ``run``, ``round``, ``watch`` start and at a watcher's claim;
:func:`check_same_config` when a run directory is resumed.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import yaml

from lifelong.config import ConfigError, from_dict
from lifelong.layout import RunLayout
from lifelong.run_config import DatasetEntry, RunConfig, dump_run_config

# ---- validation: everything a run will need, checked before anything is written ----------------
# A run or dataset name: one folder name.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
FORMATS = ("llava", "messages", "hf")
# Allowed ranges of numeric config values: key -> (low, low included, high, high included);
# None = unbounded. A key whose value is null (an unset option) is not checked.
# List values (``select.cluster.k_range``) are checked item by item.
_POS = (0, False, None, False)        # > 0
_NONNEG = (0, True, None, False)      # >= 0
_FRACTION = (0, False, 1, True)       # (0, 1]
_RATE = (0, True, 1, True)            # [0, 1]
RANGES: dict[str, tuple] = {
    "stream.builtin_config.small_train": _POS, "stream.builtin_config.small_test": _POS,
    "stream.builtin_config.full_train": _POS, "stream.builtin_config.full_test": _POS,
    "stream.builtin_config.duplicate_rate": _RATE, "stream.builtin_config.mislabel_rate": _RATE,
    "stream.builtin_config.ungrounded_rate": _RATE, "stream.builtin_config.image_size": _POS,
    "stream.builtin_config.jitter_px": _NONNEG, "stream.builtin_config.max_count": _POS,
    "ingest.max_text_chars": _POS, "ingest.max_turns": _POS, "ingest.max_images": _POS,
    "ingest.max_image_bytes": _POS, "ingest.max_image_pixels": _POS, "ingest.io_threads": _POS,
    "ingest.remembered_images": _NONNEG,
    "model.composed.image_size": _POS, "model.composed.image_tokens": _POS,
    "model.composed.projector_hidden": _NONNEG, "model.lora.rank": _POS, "model.lora.alpha": _POS,
    "model.lora.dropout": (0, True, 1, False), "model.max_length": _POS, "model.num_threads": _POS,
    "model.feature_cache_items": _NONNEG,
    "score.sketch.projection.out_dim": _POS, "score.sketch.projection.block_rows": _POS,
    "score.sketch.projection.cache_bytes": _NONNEG, "score.sketch.batch_size": _POS,
    "score.clip.batch_size": _POS, "score.clip.cache_images": _NONNEG, "score.shard_size": _POS,
    "score.refresh": _FRACTION,
    "select.budget.count": _POS, "select.budget.fraction": _FRACTION,
    "select.cluster.k": _POS, "select.cluster.k_range": _POS, "select.cluster.niter": _POS,
    "select.cluster.nredo": _POS, "select.cluster.max_train_points": _POS, "select.cluster.chunk_rows": _POS,
    "select.cluster.silhouette_points": _POS, "select.route.n_bins": _POS, "select.route.z_range": _POS,
    "select.ccs.n_strata": _POS, "select.ccs.tail_fraction": (0, True, 0.5, False), "select.new_floor": _RATE,
    "select.replay_floor": _RATE,
    "select.size_power": _RATE,
    "train.epochs": _POS, "train.batch_size": _POS, "train.grad_accum": _POS, "train.lr": _POS,
    "train.projector_lr": _POS, "train.weight_decay": _NONNEG, "train.warmup_ratio": _RATE,
    "train.max_grad_norm": _POS, "train.log_every": _POS,
    "prune.cap": _POS, "prune.epsilon": (0, True, 2, True), "prune.neighbours": _POS,
    "prune.cluster.cluster_size": _POS, "prune.cluster.max_size_factor": (1, True, None, False),
    "prune.cluster.branching": _POS, "prune.cluster.niter": _POS, "prune.cluster.max_train_points": _POS,
    "prune.cluster.chunk_rows": _POS, "prune.max_block_elems": _POS,
    "eval.max_new_tokens": _POS, "eval.batch_size": _POS, "eval.max_samples_per_task": _POS,
}


def _lookup(cfg, key: str):
    for part in key.split("."):
        cfg = getattr(cfg, part, None)
    return cfg


def _range_text(lo, lo_in, hi, hi_in) -> str:
    if hi is None:
        return f"{'at least' if lo_in else 'greater than'} {lo}"
    return f"in {'[' if lo_in else '('}{lo}, {hi}{']' if hi_in else ')'}"


def value_problems(cfg: RunConfig) -> list[str]:
    """Values outside their :data:`RANGES`, and a run name that is not one folder name."""
    out = []
    if not NAME.fullmatch(cfg.name):
        out.append(f"name: {cfg.name!r} is not a run name (letters, digits, '.', '_' and '-', starting with a "
                   "letter or digit; it becomes the folder runs_dir/name)")
    for key, (lo, lo_in, hi, hi_in) in RANGES.items():
        value = _lookup(cfg, key)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is None:
                continue
            ok = (v >= lo if lo_in else v > lo) and (hi is None or (v <= hi if hi_in else v < hi))
            if not ok:
                out.append(f"{key}: {v!r} must be {_range_text(lo, lo_in, hi, hi_in)}")
    if cfg.select.budget.count is None and cfg.select.budget.fraction is None:
        out.append("select.budget: set count or fraction")
    out += metric_problems(cfg.eval.task_metrics, "eval.task_metrics")
    for f in dataclasses.fields(cfg):  # checks a stage's config owns (``validate()`` beside its code)
        check = getattr(getattr(cfg, f.name), "validate", None)
        if callable(check):
            try:
                check()
            except (ValueError, KeyError) as e:
                text = str(e).strip("'\"")
                if not any(text in p for p in out):
                    out.append(f"{f.name}: {text}")
    return out


def metric_problems(metrics: dict[str, str], where: str) -> list[str]:
    """Answer metric names that the evaluation does not know."""
    from lifelong.evaluation.scoring import ANSWER_METRICS

    return [f"{where}: unknown answer metric {m!r} for {name!r} (known: {', '.join(sorted(ANSWER_METRICS))})"
            for name, m in metrics.items() if m not in ANSWER_METRICS]


def hf_splits(path: Path) -> set[str] | None:
    """Splits of a ``save_to_disk`` DatasetDict at ``path``; None when it is a single Dataset (or not one)."""
    try:
        return set(json.loads((Path(path) / "dataset_dict.json").read_text()).get("splits", []))
    except (OSError, ValueError):
        return None


def split_source(path: str | Path, split: str) -> Path | None:
    """Where ``split`` of the dataset at ``path`` lives, or None: the file itself; a LLaVA/messages
    folder's ``<split>.json|.jsonl|.parquet``; a saved DatasetDict holding ``split`` (or a single
    saved Dataset, which is whatever split it is given as)."""
    from lifelong.data.ingest import detect_format_safe, iter_dataset_files

    path = Path(path)
    if not path.exists():
        return None
    if path.is_file():
        return path
    if detect_format_safe(path) == "hf":
        splits = hf_splits(path)
        return path if splits is None or split in splits else None
    return next(iter(iter_dataset_files(path, split=split)), None)


def with_default_test(entry: DatasetEntry, split: str = "test") -> DatasetEntry:
    """``entry`` with its held-out split filled in when ``train`` is a folder that holds one
    (``train: folder`` without ``test:`` should not leave the folder's test split unevaluated)."""
    if entry.test or not Path(entry.train).is_dir() or split_source(entry.train, split) is None:
        return entry
    return dataclasses.replace(entry, test=entry.train)


def entry_problems(entry: DatasetEntry, where: str, train: bool = True, test: bool = True,
                   eval_split: str = "test") -> list[str]:
    """What keeps ``entry`` from being ingested and evaluated: its name, format, metric, and (when
    asked) that its train and test paths exist and hold those splits. Records are not read."""
    from lifelong.evaluation.scoring import ANSWER_METRICS

    out = []
    if not NAME.fullmatch(entry.name or ""):
        out.append(f"{where}.name: {entry.name!r} is not a dataset name (letters, digits, '.', '_' and '-', "
                   "starting with a letter or digit)")
    if entry.format is not None and entry.format not in FORMATS:
        out.append(f"{where}.format: {entry.format!r} is not one of {', '.join(FORMATS)}")
    if entry.metric not in ANSWER_METRICS:
        out.append(f"{where}.metric: unknown answer metric {entry.metric!r} "
                   f"(known: {', '.join(sorted(ANSWER_METRICS))})")
    if entry.images and (train or test) and not Path(entry.images).is_dir():
        out.append(f"{where}.images: {entry.images} is not a folder (the folder image paths are relative to)")
    for split, n in entry.expected.items():
        if split not in ("train", "test") or n < 0:
            out.append(f"{where}.expected: {split}: {n} (expected record counts per split: train, test; >= 0)")
    for what, path, split, wanted in (("train", entry.train, "train", train), ("test", entry.test, eval_split, test)):
        if not wanted or (what == "test" and not path):
            continue
        if not path:
            out.append(f"{where}.train: empty (the training split's file or folder)")
        elif not Path(path).exists():
            out.append(f"{where}.{what}: {path} does not exist")
        elif split_source(path, split) is None:
            out.append(f"{where}.{what}: {path} has no {'training' if what == 'train' else split} split "
                       f"(expected {split}.json, {split}.jsonl, {split}.parquet, or a save_to_disk dataset with "
                       f"a {split!r} split)")
        elif Path(path).is_file() and Path(path).suffix.lower() not in (".json", ".jsonl", ".parquet"):
            out.append(f"{where}.{what}: {path}: unknown format (expected .json, .jsonl, .parquet or a folder)")
    return out


def setup_datasets(layout: RunLayout) -> list[str]:
    """The datasets whose test split setup ingested (a marker written before it named them: its tasks)."""
    setup = layout.stage_info(0, "setup")
    return setup.get("datasets", setup.get("tasks", []))


def pending(cfg: RunConfig, n_builtin: int | None = None) -> tuple[list[bool], list[bool]]:
    """For each of ``cfg.stream.datasets``: (its train split is not ingested yet, its test split is not).

    Read from the run directory's stage markers: round t's ingest stage takes the train split (and the
    test split of a dataset that arrived after setup); setup takes the test splits it names. Source
    folders of finished rounds may be gone (the pool owns its content), so only pending ones are checked.
    """
    layout = RunLayout(cfg.run_dir)
    n = len(cfg.stream.datasets)
    if n_builtin is None:
        n_builtin = 0
        if cfg.stream.builtin != "none":
            if not layout.stream_manifest.exists():
                return [True] * n, [True] * n
            n_builtin = len(json.loads(layout.stream_manifest.read_text()).get("datasets", []))
    in_setup = set(setup_datasets(layout))
    train, test = [], []
    for i, e in enumerate(cfg.stream.datasets):
        ingested = layout.marker(n_builtin + i + 1, "ingest").exists()
        train.append(not ingested)
        test.append(not ingested and e.name not in in_setup)
    return train, test


def config_problems(cfg: RunConfig) -> list[str]:
    """Everything wrong with ``cfg`` that would stop its run later: values, names, metrics, and the
    paths and splits of every dataset still to be ingested. Empty when the run can go."""
    out = value_problems(cfg)
    train, test = pending(cfg)
    names = set(cfg.stream.builtin_config.order) if cfg.stream.builtin != "none" else set()
    for i, e in enumerate(cfg.stream.datasets):
        e = with_default_test(e, cfg.eval.split)
        out += entry_problems(e, f"stream.datasets[{i}] ({e.name})", train[i], test[i], cfg.eval.split)
        if e.name in names:
            out.append(f"stream.datasets[{i}].name: {e.name!r} appears twice in the stream (the built-in one "
                       "included); dataset names must be unique")
        names.add(e.name)
    from lifelong.evaluation.suites import suite_problems  # evaluation suites: names, metrics

    out += suite_problems(cfg.eval.suites, sorted(names))
    if cfg.data_root is None and any(" does not exist" in p or " is not a folder" in p for p in out) and any(
            not Path(x).is_absolute() for e in cfg.stream.datasets for x in (e.train, e.test, e.images) if x):
        out.append("data_root: not set, so relative dataset paths are read from the current folder; "
                   "give data_root=DIR, the folder they are relative to")
    return out


def check_run_config(cfg: RunConfig) -> None:
    """Raise :class:`ConfigError` naming every problem of :func:`config_problems` (nothing is written)."""
    problems = config_problems(cfg)
    if problems:
        e = ConfigError(problems[0] if len(problems) == 1 else
                        f"{len(problems)} problems in the config:\n  " + "\n  ".join(problems))
        bad = [m.group(1) for p in problems if (m := re.match(r"stream\.datasets\[\d+\] \((.*?)\)", p))]
        if bad and RunLayout(cfg.run_dir).config.exists():
            # The run exists: say how to leave it with the CLI, not by editing config.yaml.
            e.hint = (f"fix the files, or resume under a corrected config with 'lifelong run CONFIG --force'; "
                      f"a dataset that round/watch added and that has not trained leaves the run with "
                      f"'lifelong round --run {cfg.run_dir} --drop {bad[0]}'")
        raise e


def check_same_config(saved: str, cfg: RunConfig, force: bool) -> None:
    """Refuse to resume a run under a different config; ``force`` allows only changes that leave
    the work already done meaningful.

    Datasets that ``lifelong round`` / ``watch`` appended to the saved config are kept when ``cfg``
    names the saved stream's first datasets unchanged (``lifelong run CONFIG`` on an extended run).
    Never allowed, even with ``force``: a different built-in stream once setup ran, and removing,
    renaming or reordering a dataset the run has started (its test split was evaluated or its round
    began), or changing the train split of one whose round ingested it.
    """
    old = from_dict(RunConfig, yaml.safe_load(saved))
    saved_ds, new_ds = old.stream.datasets, cfg.stream.datasets
    if len(saved_ds) > len(new_ds) and saved_ds[:len(new_ds)] == new_ds:
        cfg.stream.datasets = list(saved_ds)  # arrivals of round/watch stay part of the run
    new = dump_run_config(cfg)
    if saved == new:
        return
    diffs = sorted(_diff(yaml.safe_load(saved), yaml.safe_load(new)))
    fixed = _fixed_diffs(old, cfg)
    if fixed:
        raise ConfigError(
            "this run directory was started with a different config, and these changes would contradict what "
            "the run has done (even with --force): " + "; ".join(fixed)
            + f". Resume the run as it was with 'lifelong run {cfg.run_dir}' (its own config.yaml), or start a new "
            "run (name=...)")
    if force:
        return
    raise ConfigError(
        "this run directory was started with a different config; differing keys: "
        + ", ".join(diffs[:10]) + (" ..." if len(diffs) > 10 else "")
        + f". Resume it as it was with 'lifelong run {cfg.run_dir}', resume under the new values with --force, "
        "or choose another run name (name=...)"
    )


def _fixed_diffs(old: RunConfig, new: RunConfig) -> list[str]:
    """The differences between ``old`` (saved) and ``new`` that the run's finished stages forbid."""
    layout = RunLayout(old.run_dir)
    setup = layout.stage_info(0, "setup")
    out = []
    if setup and (old.stream.builtin, old.stream.seed, old.stream.builtin_config) != \
            (new.stream.builtin, new.stream.seed, new.stream.builtin_config):
        out.append("stream.builtin / stream.seed / stream.builtin_config (setup has run on the built-in stream)")
    train_todo, _ = pending(old)
    in_setup = set(setup_datasets(layout))
    for i, e in enumerate(old.stream.datasets):
        ingested = not train_todo[i]
        if not ingested and e.name not in in_setup:
            continue
        n = new.stream.datasets[i] if i < len(new.stream.datasets) else None
        where = f"stream.datasets[{i}] ({e.name})"
        if n is None:
            out.append(f"{where} removed")
        elif n.name != e.name:
            out.append(f"{where} renamed or moved to {n.name!r}")
        elif ingested and (n.train, n.format) != (e.train, e.format):
            out.append(f"{where}.train/format changed after its round ingested it")
    return out


def _diff(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            yield from _diff(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
    elif isinstance(a, list) and isinstance(b, list) and a and all(isinstance(x, dict) for x in a + b):
        for i in range(max(len(a), len(b))):
            if i >= len(a):
                yield f"{prefix}[{i}] (added)"
            elif i >= len(b):
                yield f"{prefix}[{i}] (removed)"
            else:
                yield from _diff(a[i], b[i], f"{prefix}[{i}]")
    elif a != b:
        yield prefix
