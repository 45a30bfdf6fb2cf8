"""Does the offline default model learn the built-in stream's skills?

Three measurements, printed and saved to ``eval/results/bench_learn.json`` / ``.md``:

- **ceilings**: each task trained alone, from the base (stage-1 projector
  included), on its whole train split with the demo config's model and
  training settings (``--ceiling-epochs`` passes), then evaluated on its test
  split. With ``--split val`` the model trains on train minus a validation
  split carved from train and is scored on that validation split: that is the
  split every tuning choice was made on (the test split never was).
- **diagonal**: the accuracy of each task right after its own round,
  a[i, i], in a run of the demo config (Adapt-inf), and the run's forgetting.
- **sequential forgetting**: the same stream with ``select.strategy=sequential``.

    python -m eval.bench_learn                       # all three (runs under runs/bench_learn_*, resumable)
    python -m eval.bench_learn --only ceilings --split val --tasks vqa_shape,digits
    python -m eval.bench_learn --only runs --demo-run runs/demo   # read an existing demo run instead
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np

from lifelong.machine import CpuUse, describe_machine, machine_line, use_line

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "eval" / "results"

# The demo's learning goals, read here on one run each; eval/compare.py reads them over seeds.
from eval.experiments import DEMO_GOALS  # noqa: E402


def ceilings(config: Path, tasks: list[str] | None, split: str, epochs: float, n_val: int, work: Path,
             overrides: list[str], n_train: int | None = None, share: float | None = None) -> dict:
    """Per task: accuracy after training alone on its train split (see the module docstring).
    ``share``: instead of alone, train as in a round of the stream, where the task makes up this
    fraction of the training set and the rest is drawn (seeded) from the tasks before it in the order."""
    import dataclasses

    import torch

    from eval.learnlib import accuracy, build_pool, carve_validation, train_alone
    from lifelong.models import load_model
    from lifelong.run_config import load_run_config

    cfg = load_run_config(config, overrides)
    stream = cfg.stream.builtin_config
    tasks = tasks or list(stream.order)
    if cfg.model.num_threads is None:
        torch.set_num_threads(2)
    order = list(stream.order)
    needed = sorted({*tasks, *(order[:max(order.index(t) for t in tasks)] if share else [])}, key=order.index)
    pool = build_pool(work, needed, stream, cfg.stream.seed)
    loaded = load_model(cfg.model)
    init = work / "init_adapter"
    loaded.save_adapter(init)
    train_cfg = dataclasses.replace(cfg.train, epochs=epochs, progress=False)
    out = {}
    for task in tasks:
        loaded.load_adapter(init)
        train = pool.samples(task=task)
        if split == "val":
            train, held = carve_validation(train, n_val, cfg.stream.seed)
        else:
            held = pool.samples(status=None, split="test", task=task)
        if n_train is not None and n_train < len(train):
            train = random.Random(cfg.stream.seed).sample(train, n_train)
        earlier = order[:order.index(task)]
        if share and share < 1 and earlier:
            others = [x for e in earlier for x in pool.samples(task=e)]
            n_other = min(len(others), round(len(train) * (1 - share) / share))
            train = train + random.Random(cfg.stream.seed + 1).sample(others, n_other)
        before, _ = accuracy(loaded, held, pool.load_image, cfg.eval.max_new_tokens)
        info = train_alone(loaded, train, pool.load_image, train_cfg)
        after, answers = accuracy(loaded, held, pool.load_image, cfg.eval.max_new_tokens)
        out[task] = {"accuracy": after, "before": before, "n_train": len(train), "n_eval": len(held),
                     "examples": answers[:8], **info}
        print(f"{task:14s} {split}: {before:.3f} -> {after:.3f}  (train {len(train)}, eval {len(held)}, "
              f"{info['seconds']} s)", flush=True)
    return out


def write_ceilings(found: dict, epochs: float, command: str) -> None:
    """Merge test-split ceilings into the stream's ceilings.json and rewrite data_cards/."""
    from lifelong.data.stream.cards import CEILINGS, load_ceilings, write_cards

    known = load_ceilings()
    for task, v in found.items():
        known[task] = {"accuracy": round(v["accuracy"], 4), "before": round(v["before"], 4), "epochs": epochs,
                       "n_train": v["n_train"], "n_test": v["n_eval"], "command": command}
    CEILINGS.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    write_cards(ROOT / "data_cards")


def run_stream(config: Path, name: str, runs_dir: Path, overrides: list[str]) -> Path:
    """Run (or resume) the stream with ``config`` + ``overrides`` as run ``name``; returns its directory."""
    d = runs_dir / name
    cmd = [sys.executable, "-m", "lifelong.cli", "run", str(config), f"name={name}", f"runs_dir={runs_dir}",
           *overrides]
    print(" ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return d


def matrix_summary(run: Path) -> dict:
    """Diagonal a[i, i], its mean, final average accuracy and forgetting of a finished run."""
    from lifelong.evaluation import metrics
    from lifelong.evaluation.history import read_accuracy_csv
    from lifelong.layout import RunLayout
    from lifelong.loop import ROUND_STAGES

    layout = RunLayout(run)
    tasks, a = read_accuracy_csv(layout.accuracy_csv)
    diag = [float(x) for x in metrics.diagonal(a)]
    s = metrics.compute_all(a)
    timings = [layout.stage_info(t, stage).get("seconds", 0.0)
               for t in range(len(tasks) + 1) for stage in ("setup", *ROUND_STAGES)]
    new_selected = {}  # the arriving dataset's samples in its own round's selection
    for t, task in enumerate(tasks, start=1):
        sel = json.loads(layout.selection(t).read_text()) if layout.selection(t).exists() else {}
        new_selected[task] = sum(1 for i in sel.get("ids", []) if i.split("/", 1)[0] == task) if sel else None
    return {"run": str(run), "tasks": tasks, "matrix": a.tolist(), "diagonal": dict(zip(tasks, diag)),
            "diagonal_mean": s["learning_acc"], "final_average_accuracy": float(np.nanmean(a[-1])),
            "forgetting": s.get("forgetting"), "bwt": s.get("bwt"), "stage_seconds_total": round(sum(timings), 1),
            "new_selected": new_selected}


def goals(res: dict) -> dict:
    """Per task: its ceiling (computed here on the test split, else the recorded one), right after its
    round in the demo run and in the sequential run; and the three goals, met or not, on these runs."""
    if "demo" not in res:
        return {}
    from lifelong.data.stream.cards import load_ceilings

    tasks = res["demo"]["tasks"]
    here = res.get("ceilings", {}) if res.get("ceiling_split") == "test" else {}
    recorded = load_ceilings()
    ceiling = {t: (here[t]["accuracy"] if t in here else recorded.get(t, {}).get("accuracy")) for t in tasks}
    diag = res["demo"]["diagonal"]
    lowest = min(tasks, key=lambda t: diag[t])
    out = {"ceiling": ceiling, "ceiling_source": {t: "this run" if t in here else "ceilings.json" for t in tasks},
           "lowest": lowest, "min_diagonal_met": diag[lowest] >= DEMO_GOALS["min_diagonal"],
           "diagonal_mean_met": res["demo"]["diagonal_mean"] >= DEMO_GOALS["learning_acc"]}
    if "sequential" in res:
        out["sequential_forgetting_met"] = res["sequential"]["forgetting"] >= DEMO_GOALS["sequential_forgetting"]
    return out


def goal_lines(res: dict) -> list[str]:
    g = res.get("goals")
    if not g:
        return []
    tasks = res["demo"]["tasks"]
    yes = {True: "met", False: "not met"}
    rows = [("ceiling (test, trained alone)", g["ceiling"]), ("demo, right after its round", res["demo"]["diagonal"])]
    if "sequential" in res:
        rows.append(("sequential, right after its round", res["sequential"]["diagonal"]))
    lines = ["## Goals", "", "| | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join("–" if v.get(t) is None else f"{v[t]:.2f}" for t in tasks) + " |"
              for name, v in rows]
    low = g["lowest"]
    lines += ["", f"- every task ≥ {DEMO_GOALS['min_diagonal']} right after its round: {yes[g['min_diagonal_met']]} "
                  f"(lowest {low} {res['demo']['diagonal'][low]:.2f})",
              f"- their mean ≥ {DEMO_GOALS['learning_acc']}: {yes[g['diagonal_mean_met']]} ({res['demo']['diagonal_mean']:.3f})"]
    if "sequential_forgetting_met" in g:
        lines.append(f"- sequential's forgetting ≥ {DEMO_GOALS['sequential_forgetting']}: "
                     f"{yes[g['sequential_forgetting_met']]} ({res['sequential']['forgetting']:.3f})")
    return lines + ["", "One run each (one seed); `eval/compare.py` gives the same goals over seeds, with intervals.", ""]


def markdown(res: dict) -> str:
    lines = ["# bench_learn", "", f"command: `{res['command']}`", "",
             f"machine: {res.get('machine', 'not recorded')}; {use_line(res.get('cpu_use'))}", ""]
    if "ceilings" in res:
        c = res["ceilings"]
        lines += [f"## Ceilings ({res['ceiling_split']} split, {res['ceiling_epochs']} epochs, trained alone)", "",
                  "| task | before | after | train | eval |", "|---|---|---|---|---|"]
        lines += [f"| {t} | {v['before']:.3f} | {v['accuracy']:.3f} | {v['n_train']} | {v['n_eval']} |"
                  for t, v in c.items()]
        lines.append("")
    for key in ("demo", "sequential"):
        if key in res:
            r = res[key]
            lines += [f"## {key} ({r['run']})", "", "| round | " + " | ".join(r["tasks"]) + " |",
                      "|---" * (len(r["tasks"]) + 1) + "|"]
            for t, row in enumerate(r["matrix"]):
                lines.append(f"| {t} | " + " | ".join(f"{x:.2f}" for x in row) + " |")
            lines += ["", f"diagonal: {', '.join(f'{k} {v:.2f}' for k, v in r['diagonal'].items())}; "
                      f"mean {r['diagonal_mean']:.3f}; final average accuracy {r['final_average_accuracy']:.3f}; "
                      f"forgetting {r['forgetting']:.3f}; stage seconds {r['stage_seconds_total']}", ""]
            if any(v is not None for v in r.get("new_selected", {}).values()):
                lines += ["samples of the arriving dataset in its own round's selection: "
                          + ", ".join(f"{k} {v}" for k, v in r["new_selected"].items()), ""]
    return "\n".join(lines + goal_lines(res))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml")
    p.add_argument("--only", choices=["all", "ceilings", "runs"], default="all")
    p.add_argument("--tasks", default=None, help="ceilings of these tasks only (comma-separated)")
    p.add_argument("--split", choices=["test", "val"], default="test", help="ceilings scored on test or validation")
    p.add_argument("--ceiling-epochs", type=float, default=3.0)
    p.add_argument("--n-val", type=int, default=50)
    p.add_argument("--n-train", type=int, default=None,
                   help="train on a seeded subset of this many samples (a task's share of a demo round, ~75)")
    p.add_argument("--share", type=float, default=None,
                   help="train as in a round: the task is this fraction of the training set, the rest drawn "
                        "from the tasks before it (0.25 ~ a demo round at the cap)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_learn_work")
    p.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    p.add_argument("--demo-run", type=Path, default=None, help="read this finished run instead of running the demo")
    p.add_argument("--sequential-run", type=Path, default=None)
    p.add_argument("--skip-sequential", action="store_true", help="the demo run only")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--write-ceilings", action="store_true",
                   help="record the test-split ceilings for the data cards (lifelong/data/stream/ceilings.json)")
    p.add_argument("--tag", default="", help="suffix of the result files")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the config")
    a = p.parse_args(argv)
    res: dict = {"command": "python -m eval.bench_learn " + " ".join(argv if argv is not None else sys.argv[1:]),
                 "machine": machine_line(describe_machine())}
    with CpuUse() as use:  # the seconds below count only if the benchmark had the machine to itself
        if a.only in ("all", "ceilings"):
            tasks = a.tasks.split(",") if a.tasks else None
            res["ceilings"] = ceilings(a.config, tasks, a.split, a.ceiling_epochs, a.n_val, a.work, a.overrides,
                                       a.n_train, a.share)
            res["ceiling_split"], res["ceiling_epochs"], res["ceiling_n_train"] = a.split, a.ceiling_epochs, a.n_train
            res["ceiling_share"] = a.share
            if a.write_ceilings and a.split == "test":
                write_ceilings(res["ceilings"], a.ceiling_epochs, res["command"])
        if a.only in ("all", "runs"):
            demo = a.demo_run or run_stream(a.config, "bench_learn_demo", a.runs_dir, a.overrides)
            res["demo"] = matrix_summary(demo)
            if not a.skip_sequential:
                seq = a.sequential_run or run_stream(a.config, "bench_learn_sequential", a.runs_dir,
                                                     ["select.strategy=sequential", *a.overrides])
                res["sequential"] = matrix_summary(seq)
    res["goals"] = goals(res)
    res["cpu_use"] = use.record()
    res["seconds"] = res["cpu_use"]["wall_s"]
    text = markdown(res)
    print(text)
    a.results.mkdir(parents=True, exist_ok=True)
    stem = "bench_learn" + (f"_{a.tag}" if a.tag else "")
    (a.results / f"{stem}.json").write_text(json.dumps(res, indent=1) + "\n")
    (a.results / f"{stem}.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
