"""Where everything of a run lives: one place that names the run directory's paths.

    runs/<name>/
      config.yaml            resolved config (written atomically)
      run.lock               the writer lock (lifelong/runlock.py)
      data/                  the built-in stream (data/stream.json), when used
      inbox/ arrivals/       datasets arriving in a live run (lifelong/arrivals.py)
      pool/                  the pool store
      rounds/<t>/<stage>/    a stage's outputs + its ``done`` marker (round 0: ``setup``)
      adapters/round_<t>/    PEFT adapter after round t
      metrics/               history.json, accuracy_matrix.csv, metrics.json, tb/
      reeval/round_<t>.jsonl predictions of ``lifelong eval --out`` (never the loop's own files)
      dashboard.html
      data_cards/round_<t>.md

Only paths and the atomic writers live here; no stage logic, no imports of the
rest of the package, so every module can use it.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

DONE = "done"
# What makes a saved adapter folder usable: PEFT's config and weights (the projector is in the weights).
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a part.

    A temporary sibling is written and renamed over ``path`` (``os.replace`` is
    atomic on one file system), so a crash leaves at most a ``.<name>.tmp``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data) -> None:
    """Atomic JSON write (see :func:`write_atomic`)."""
    write_atomic(path, json.dumps(data, indent=1, ensure_ascii=False))


def read_json(path: Path):
    """The JSON in ``path``, or in ``path`` + ``.gz`` (an earlier round's record, compressed once only
    the lineage reads it), or None when there is neither."""
    path = Path(path)
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    packed = path.with_name(path.name + ".gz")
    if packed.is_file():
        with gzip.open(packed, "rt", encoding="utf-8") as f:
            return json.load(f)
    return None


def compress_json(path: Path) -> bool:
    """Replace ``path`` by ``path.gz`` (written atomically before the original goes); False if absent.

    For records that grow with everything ever pruned (``pruned.json``) once
    only the lineage reads them.
    """
    if not path.is_file():
        return False
    packed = path.with_name(path.name + ".gz")
    tmp = path.with_name(f".{packed.name}.tmp")
    with open(path, "rb") as src, gzip.open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.replace(tmp, packed)
    path.unlink()
    return True


@dataclass(frozen=True)
class RunLayout:
    """The paths of the run directory ``root`` (nothing is created by asking)."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    # ---- top level ------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def lock(self) -> Path:
        return self.root / "run.lock"

    @property
    def pool(self) -> Path:
        return self.root / "pool"

    @property
    def data(self) -> Path:
        """The built-in stream, prepared once (``stream.json`` is its manifest)."""
        return self.root / "data"

    @property
    def stream_manifest(self) -> Path:
        return self.data / "stream.json"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def arrivals(self) -> Path:
        return self.root / "arrivals"

    @property
    def dashboard(self) -> Path:
        return self.root / "dashboard.html"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    @property
    def history(self) -> Path:
        """The run's record the dashboard reads (lifelong/evaluation/history.py)."""
        return self.metrics / "history.json"

    @property
    def accuracy_csv(self) -> Path:
        return self.metrics / "accuracy_matrix.csv"

    @property
    def metrics_json(self) -> Path:
        return self.metrics / "metrics.json"

    @property
    def tensorboard(self) -> Path:
        """The default log directory of directory-based trackers (each run in ``<name>/`` below it)."""
        return self.metrics / "tb"

    def data_card(self, t: int) -> Path:
        return self.root / "data_cards" / f"round_{t}.md"

    # ---- rounds and stages ----------------------------------------------------------
    @property
    def rounds(self) -> Path:
        return self.root / "rounds"

    def stage_dir(self, t: int, stage: str) -> Path:
        return self.rounds / str(t) / stage

    def marker(self, t: int, stage: str) -> Path:
        """The stage's ``done`` marker: its info (wall time, counts) once it finished."""
        return self.stage_dir(t, stage) / DONE

    def stage_info(self, t: int, stage: str) -> dict:
        """What round ``t``'s ``stage`` recorded in its marker (``{}`` when it has not finished)."""
        return read_json(self.marker(t, stage)) or {}

    def ingest_report(self, t: int) -> Path:
        return self.stage_dir(t, "ingest") / "ingest.json"

    def score_columns(self, t: int) -> Path:
        """Round ``t``'s column store of scores, sketches and embeddings."""
        return self.stage_dir(t, "score") / "columns"

    def score_sources(self, t: int) -> Path:
        """score.refresh < 1: sample id -> the round whose pass last scored it."""
        return self.stage_dir(t, "score") / "sources.json"

    def selection(self, t: int) -> Path:
        return self.stage_dir(t, "select") / "selection.json"

    def scores_table(self, t: int) -> Path:
        """Round ``t``'s per-sample scores table (cut to the selected rows once a later round reported)."""
        return self.stage_dir(t, "select") / "scores.parquet"

    def losses(self, t: int) -> Path:
        return self.stage_dir(t, "train") / "losses.json"

    def pruned(self, t: int) -> Path:
        return self.stage_dir(t, "prune") / "pruned.json"

    def composition(self, t: int) -> Path:
        """What round ``t`` chose and pruned, per dataset, task, defect kind and cluster (the report stage)."""
        return self.stage_dir(t, "report") / "composition.json"

    def prune_embeddings(self, t: int) -> Path:
        """Pruning's own embedding pass, kept only until its decision is written."""
        return self.stage_dir(t, "prune") / "embeddings.npy"

    # ---- predictions ------------------------------------------------------------------
    def predictions(self, t: int) -> Path:
        """The loop's own per-question predictions of the model after round ``t`` (round 0: setup's)."""
        return self.stage_dir(0, "setup") / "predictions.jsonl" if t == 0 else \
            self.stage_dir(t, "eval") / "predictions.jsonl"

    def backfill_predictions(self, later: int, t: int) -> Path:
        """Cells of round ``t``'s row that round ``later``'s eval stage filled for datasets arriving after t."""
        return self.stage_dir(later, "eval") / "backfill" / f"round_{t}.jsonl"

    def all_predictions(self, t: int) -> list[Path]:
        """Every file the loop wrote with predictions of round ``t``'s model: its own, then back-filled ones."""
        return [self.predictions(t), *sorted(self.rounds.glob(f"*/eval/backfill/round_{t}.jsonl"))]

    def reeval_predictions(self, t: int) -> Path:
        """Default output of ``lifelong eval --round t --out``: apart from the loop's own files."""
        return self.root / "reeval" / f"round_{t}.jsonl"

    # ---- adapters ----------------------------------------------------------------------
    @property
    def adapters(self) -> Path:
        return self.root / "adapters"

    def adapter_dir(self, t: int) -> Path:
        return self.adapters / f"round_{t}"

    def missing_adapter_files(self, t: int) -> list[str]:
        """The :data:`ADAPTER_FILES` round ``t``'s adapter folder lacks (all of them when there is none)."""
        return [f for f in ADAPTER_FILES if not (self.adapter_dir(t) / f).is_file()]

    def has_adapter(self, t: int) -> bool:
        """Round ``t`` has a usable saved adapter: its folder holds every one of :data:`ADAPTER_FILES`.

        The one criterion of the loop, ``lifelong eval`` and export. (The loop
        writes an adapter into a temporary folder and renames it, so a crash
        never leaves a partial one; a hand-damaged folder does not count.)
        """
        return not self.missing_adapter_files(t)

    def adapter_rounds(self) -> list[int]:
        """Rounds with a usable saved adapter (:meth:`has_adapter`), ascending."""
        found = []
        for p in self.adapters.glob("round_*") if self.adapters.is_dir() else ():
            suffix = p.name[len("round_"):]
            if suffix.isdigit() and self.has_adapter(int(suffix)):
                found.append(int(suffix))
        return sorted(found)
