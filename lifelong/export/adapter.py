"""``lifelong export RUN [--round N] --out DIR [--merge]``: take an adapter out of a run.

What an export directory holds:

- default: ``adapter_config.json`` + ``adapter_model.safetensors`` (LoRA and the
  projector, a ``modules_to_save`` copy), copied from ``adapters/round_<t>``.
  For an HF base model it loads with plain ``peft``, no ``lifelong`` import::

      base = AutoModelForImageTextToText.from_pretrained(BASE)
      model = PeftModel.from_pretrained(base, DIR)

  ``base_model_name_or_path`` in ``adapter_config.json`` names the base: the
  HF path of the run's model (``model.hf.path``, absolute when it is a local
  directory), or what ``base_model=`` says. Bases that exist only inside
  ``lifelong`` get an identifier with a colon, which no hub accepts, so
  ``AutoPeftModel`` fails at once instead of fetching something else:
  ``lifelong-composed:<vision>+<lm>`` for the composed model and
  ``lifelong-tiny-<family>:seed=<seed>`` for the tiny random test models. Those load
  with :func:`load_exported`, which rebuilds the base from ``lifelong_model.yaml``
  and applies the same two files.
- ``--merge``: the adapter merged into the base (peft ``merge_and_unload``).
  HF family: ``save_pretrained`` safetensors + the processor, loadable with
  ``AutoModelForImageTextToText.from_pretrained(DIR)``. Composed family: the
  merged projector + LM as ``model.safetensors`` (module names of
  ``ComposedVLM``) + the tokenizer; the frozen vision encoder is not saved (it is
  rebuilt from the config); load with :func:`load_exported`.
- runs with ``adapter_policy: merge``: round t's model is the base with every
  round's delta merged in, so the adapter export stacks rounds 1..t's LoRA into
  one of rank r*t (:mod:`lifelong.export.stack`; plain ``peft`` loads it), and
  ``--merge`` replays the run's merges.
- always: ``lifelong_model.yaml`` (the run's model config), ``README.md`` (model
  card), ``lineage.json`` (which data trained it; :mod:`lifelong.export.lineage`).

Nothing is written unless every check passes: the export is assembled in a
hidden temporary directory beside ``DIR`` and renamed into place at the end.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import yaml

from lifelong.config import from_dict, to_dict
from lifelong.export.cards import model_card
from lifelong.export.families import ExportError, export_profile
from lifelong.export.lineage import build_lineage
from lifelong.export.stack import StackError, stack_adapters
from lifelong.layout import RunLayout

MODEL_YAML = "lifelong_model.yaml"


def _check(run_dir: Path, out_dir: Path, t: int | None) -> int:
    """The round to export, after every check that can fail before writing."""
    layout = RunLayout(run_dir)
    if not layout.config.is_file():
        raise ExportError(f"{run_dir} is not a run directory (no config.yaml)")
    rounds = layout.adapter_rounds()
    if t is not None and t not in rounds and layout.adapter_dir(t).is_dir():
        raise ExportError(f"{layout.adapter_dir(t)} lacks {', '.join(layout.missing_adapter_files(t))}")
    if not rounds:
        raise ExportError(f"run {run_dir} has no saved adapter (adapters/round_<t>/ is empty)")
    if t is None:
        t = rounds[-1]
    elif t not in rounds:
        raise ExportError(
            f"run {run_dir} has no adapter for round {t}; rounds with an adapter: "
            + ", ".join(map(str, rounds))
        )
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ExportError(f"output directory {out_dir} exists and is not empty; choose a new or empty directory")
    return t


def _metrics_rows(run_dir: Path, t: int) -> tuple[list[str], list[list], dict]:
    """(tasks, accuracy rows 0..t, CL metrics of those rows); empty when nothing was evaluated."""
    from lifelong.evaluation.history import load_history
    from lifelong.evaluation.metrics import compute_all

    try:
        h = load_history(run_dir)
    except FileNotFoundError:
        return [], [], {}
    a = h.accuracy_matrix()[: t + 1]
    if a.shape[0] == 0:
        return h.tasks, [], {}
    # Each column's teaching round: a mixture's tasks share one, a suite's is none (metrics.py).
    metrics = {k: (float(v) if v == v else None) for k, v in compute_all(a, None, h.learned()).items()}
    return h.tasks, [[None if x != x else float(x) for x in row] for row in a], metrics


def _write_merged(profile, run_cfg, t: int, run_dir: Path, dest: Path) -> None:
    from lifelong.models.replay import RoundModel

    # The run's merges replayed as its loop did, then round t's adapter folded in too.
    loaded = RoundModel(run_cfg.model, run_cfg.adapter_policy == "merge", RunLayout(run_dir)).at(t)
    profile.save_merged(loaded, loaded.model.merge_and_unload(), dest)


def _usual_modes(folder: Path) -> None:
    """Give every file under ``folder`` the mode a new file gets (0644 under umask 022): safetensors
    writes its files 0600, which would keep the weights from whoever the export is for."""
    mask = os.umask(0)
    os.umask(mask)
    for p in folder.rglob("*"):
        if p.is_file() and not p.is_symlink():
            p.chmod(0o666 & ~mask)


def export(
    run_dir: str | Path,
    out_dir: str | Path,
    round: int | None = None,
    merge: bool = False,
    base_model: str | None = None,
) -> Path:
    """Export the adapter saved after ``round`` (None = latest) of ``run_dir`` into ``out_dir``.

    See the module docstring for what is written. Raises :class:`ExportError`
    (writing nothing) when the round has no adapter or ``out_dir`` is not empty.
    Returns ``out_dir``.
    """
    from lifelong.run_config import load_run_config

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    layout = RunLayout(run_dir)
    t = _check(run_dir, out_dir, round)
    run_cfg = load_run_config(run_dir)
    profile = export_profile(run_cfg.model)
    # Merge policy: round t's adapter is only a delta on a base with rounds
    # 1..t-1 merged in, so the export carries every round's delta.
    stacked = run_cfg.adapter_policy == "merge" and t > 1
    if stacked:
        missing = [i for i in range(1, t) if not layout.has_adapter(i)]
        if missing:
            raise ExportError(f"run {run_dir} uses adapter_policy='merge': round {t}'s model needs the adapters "
                              f"of rounds 1..{t}, and rounds {missing} have none")
    base = base_model or profile.base_id()
    lineage = build_lineage(run_dir, t)
    tasks, accuracy, metrics = _metrics_rows(run_dir, t)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.export-{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        model_cfg = copy.deepcopy(run_cfg.model)
        if merge:
            _write_merged(profile, run_cfg, t, run_dir, tmp)
        elif stacked:
            try:
                conf = stack_adapters([layout.adapter_dir(i) for i in range(1, t + 1)], tmp)
            except StackError as e:
                raise ExportError(str(e)) from None
            conf["base_model_name_or_path"] = base
            (tmp / "adapter_config.json").write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
            model_cfg.lora.rank, model_cfg.lora.alpha = conf["r"], conf["lora_alpha"]
        else:
            src = layout.adapter_dir(t)
            conf = json.loads((src / "adapter_config.json").read_text(encoding="utf-8"))
            conf["base_model_name_or_path"] = base
            (tmp / "adapter_config.json").write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
            shutil.copyfile(src / "adapter_model.safetensors", tmp / "adapter_model.safetensors")
        (tmp / MODEL_YAML).write_text(yaml.safe_dump(to_dict(model_cfg), sort_keys=False), encoding="utf-8")
        (tmp / "lineage.json").write_text(json.dumps(lineage, indent=1) + "\n", encoding="utf-8")
        strategy = next((r["strategy"] for r in lineage["rounds"] if r["strategy"]), None)
        card = model_card(
            run=run_dir.name, round_=t, base_model=base, card_base_model=profile.card_base_model(base),
            family=run_cfg.model.family, strategy=strategy, datasets=lineage["datasets"], metrics=metrics,
            tasks=tasks, accuracy=accuracy, lineage_rounds=lineage["rounds"], merged=merge,
            loader=profile.loader_snippet(base, merge), base_note=profile.base_note(),
        )
        if stacked:
            how = ("These weights replay those merges" if merge
                   else f"This adapter stacks the LoRA of rounds 1-{t} into one LoRA of rank {conf['r']}")
            card += (f"\n## Adapter policy\n\nThis run used `adapter_policy: merge` (each round's adapter merged "
                     f"into the base before the next). {how}, so it gives the model after round {t} (up to the "
                     "base dtype's rounding of the merges).\n")
        (tmp / "README.md").write_text(card, encoding="utf-8")
        _usual_modes(tmp)
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above); rename needs the name free
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def load_exported(directory: str | Path, device: str | None = None):
    """A ``LoadedModel`` from an export directory (either family, adapter or merged).

    The base is rebuilt from ``lifelong_model.yaml`` (``device`` overrides its
    device). Adapter exports: the adapter files are loaded into it. Merged
    exports: the family's export profile loads them
    (:mod:`lifelong.export.families`): merged HF exports are the base (with a
    fresh, zero-effect LoRA); in merged composed exports ``model.safetensors``
    replaces the projector and LM weights (the fresh LoRA has B = 0).
    """
    from lifelong.models import ModelConfig, load_model

    directory = Path(directory)
    if not (directory / MODEL_YAML).is_file():
        raise ExportError(f"{directory} is not a lifelong export (no {MODEL_YAML})")
    cfg = from_dict(ModelConfig, yaml.safe_load((directory / MODEL_YAML).read_text(encoding="utf-8")))
    if device is not None:
        cfg.device = device
    if (directory / "adapter_config.json").is_file():
        loaded = load_model(cfg)
        loaded.load_adapter(directory)
        return loaded
    return export_profile(cfg).load_merged(directory)
