"""Is a weak task limited by what the image tokens carry, or by what the model learns from them?

A linear probe reads the scene out of the frozen image tokens the LM sees (the
encoder's pooled grid, and optionally the stage-1 projector's output), and the
task's answer is then decoded from the probed scene by a fixed rule. If the
probe answers far better than the trained model (``bench_learn.py``'s
ceilings), the tokens carry the answer and the gap is in learning; if the probe
fails too, more training cannot help and the image side must change.

The probe: per grid cell, one logistic regression per attribute (a colour is
present in the cell; the cell holds an object), fitted on the cells of the
task's train split, scored on its test split. The scene's truth comes from the
generator's provenance (object centres and colours). Decoders:

- ``spatial``: the cells most likely to hold the first and the second named
  colour; the relation follows from the two cells (dominant axis of their
  offset). At a 2x2 grid the cells tell the relation unless the two objects
  sit in diagonal cells (then both axes differ and the rule says left/right):
  on the demo stream that is 48 of 300 train and 7 of 60 test scenes, so a
  perfect reading of the cells answers 0.92 of the test questions.
- ``counting``: the number of cells that hold an object (the task puts one
  shape per quarter, so at a 2x2 grid this is the count).

Printed and saved to ``eval/results/bench_probe[_TAG].json`` / ``.md``::

    python -m eval.bench_probe                        # spatial and counting, the demo model's grid
    python -m eval.bench_probe --grid 3 --tag grid3   # the same scene read from a 3x3 grid
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from lifelong.machine import describe_machine, machine_line
from lifelong.models.align import cell_of

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "eval" / "results"

TASKS = ("spatial", "counting")


def relation_of_cells(a: int, b: int, grid: int) -> str:
    """Where cell ``a`` lies relative to cell ``b`` along the dominant axis (ties: horizontal)."""
    (ay, ax), (by, bx) = divmod(a, grid), divmod(b, grid)
    dx, dy = ax - bx, ay - by
    if dx != 0 and abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "above" if dy < 0 else "below"


def scene_labels(samples: list, colors: list[str], grid: int, size: int) -> np.ndarray:
    """(N, cells, colours + 1): colour k has an object centred in the cell; last column: any object."""
    y = np.zeros((len(samples), grid * grid, len(colors) + 1))
    for i, s in enumerate(samples):
        for o in s.provenance["objects"]:
            c = cell_of(o["cx"], o["cy"], grid, size)
            y[i, c, colors.index(o["color"])] = 1
            y[i, c, -1] = 1
    return y


def fit_probes(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """One standardised logistic regression per label column over all cells; (N_test, cells, L) probabilities."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    n, cells, dim = x_train.shape
    scale = StandardScaler().fit(x_train.reshape(-1, dim))
    xt, xs = scale.transform(x_train.reshape(-1, dim)), scale.transform(x_test.reshape(-1, dim))
    yt = y_train.reshape(n * cells, -1)
    out = np.zeros((xs.shape[0], yt.shape[1]))
    for k in range(yt.shape[1]):
        if yt[:, k].min() == yt[:, k].max():  # a label never (or always) seen: predict it constant
            out[:, k] = yt[0, k]
            continue
        m = LogisticRegression(C=0.1, max_iter=2000).fit(xt, yt[:, k])
        out[:, k] = m.predict_proba(xs)[:, 1]
    return out.reshape(x_test.shape[0], cells, -1)


def decode(task: str, samples: list, probs: np.ndarray, colors: list[str], grid: int) -> list[str]:
    """The task's answer for each test sample, from the probed scene."""
    answers = []
    for s, p in zip(samples, probs):
        objects = s.provenance["objects"]
        if task == "spatial":
            a = int(p[:, colors.index(objects[0]["color"])].argmax())
            b = int(p[:, colors.index(objects[1]["color"])].argmax())
            answers.append(relation_of_cells(a, b, grid))
        elif task == "counting":
            answers.append(str(int((p[:, -1] > 0.5).sum())))
        else:
            raise ValueError(f"no probe decoder for task {task!r}; have {TASKS}")
    return answers


def encode_split(samples: list, pool, features):
    """(N, cells, C) float32 tensor: the pooled encoder tokens of each sample's image."""
    import torch

    out = []
    for i in range(0, len(samples), 64):
        out.append(features.encode([pool.load_image(s.images[0]) for s in samples[i:i + 64]]))
    return torch.cat(out)


def probe_task(task: str, pool, features, grid: int, size: int, projector=None) -> dict:
    """Probe results per view of the tokens: ``encoder`` and, given a projector, ``stage-1 projector``."""
    import torch

    train = pool.samples(task=task)
    test = pool.samples(status=None, split="test", task=task)
    colors = sorted({o["color"] for s in train + test for o in s.provenance["objects"]})
    y_train, truth = scene_labels(train, colors, grid, size), scene_labels(test, colors, grid, size)
    refs = [s.provenance["true_answer"] for s in test]
    views = {"encoder": (encode_split(train, pool, features), encode_split(test, pool, features))}
    if projector is not None:
        with torch.no_grad():
            views["stage-1 projector"] = tuple(projector(x) for x in views["encoder"])
    out = {}
    for where, (x_train, x_test) in views.items():
        probs = fit_probes(x_train.numpy(), y_train, x_test.numpy())
        answers = decode(task, test, probs, colors, grid)
        out[where] = {
            "accuracy": float(np.mean([a == r for a, r in zip(answers, refs)])),
            "cell_label_accuracy": float(((probs > 0.5) == truth).mean()),
            "cell_label_base_rate": float((truth == 0).mean()),
            "n_train": len(train), "n_test": len(test), "examples": answers[:8],
        }
    return out


def markdown(res: dict) -> str:
    lines = ["# bench_probe", "", f"command: `{res['command']}`", "", f"machine: {res['machine_line']}", "",
             f"Linear probe of the frozen image tokens ({res['grid']}x{res['grid']} grid), answers decoded "
             "from the probed scene; test split.", "",
             "| task | tokens | probe accuracy | cell-label accuracy (all-absent rate) | train | test |",
             "|---|---|---|---|---|---|"]
    for key, v in res["probes"].items():
        task, where = key.split("/")
        lines.append(f"| {task} | {where} | {v['accuracy']:.3f} | {v['cell_label_accuracy']:.3f} "
                     f"({v['cell_label_base_rate']:.3f}) | {v['n_train']} | {v['n_test']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--grid", type=int, default=None, help="cells per side (default: the config's image_tokens)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_probe")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--tag", default="")
    p.add_argument("overrides", nargs="*")
    a = p.parse_args(argv)

    import math

    import torch

    from eval.learnlib import build_pool
    from lifelong.models.composed import STAGE1_WIDTH, has_stage1, init_projector, make_projector
    from lifelong.models.vision import VisionFeatures, build_encoder
    from lifelong.run_config import load_run_config

    t0 = time.time()
    torch.set_num_threads(2)
    cfg = load_run_config(a.config, a.overrides)
    stream, composed = cfg.stream.builtin_config, cfg.model.composed
    grid = a.grid or math.isqrt(composed.image_tokens)
    tasks = [t for t in a.tasks.split(",") if t]
    pool = build_pool(a.work, tasks, stream, cfg.stream.seed)
    encoder, mean, std = build_encoder(composed, cfg.model.seed)
    features = VisionFeatures(encoder, image_size=composed.image_size, image_tokens=grid * grid, mean=mean,
                              std=std, cache_dir=None, max_items=0, device=torch.device("cpu"))
    projector = None
    if has_stage1(composed):  # the projector the demo model starts from
        projector = make_projector(features.dim, STAGE1_WIDTH, composed.projector_hidden)
        init_projector(projector, replace(cfg.model, composed=replace(composed, projector_init="stage1")))
    probes = {}
    for task in tasks:
        for where, v in probe_task(task, pool, features, grid, stream.image_size, projector).items():
            probes[f"{task}/{where}"] = v
            print(f"{task:10s} {where:18s} probe {v['accuracy']:.3f}  cell labels {v['cell_label_accuracy']:.3f} "
                  f"(all-absent {v['cell_label_base_rate']:.3f}), train {v['n_train']}, test {v['n_test']}",
                  flush=True)
    machine = describe_machine()
    res = {"command": "python -m eval.bench_probe " + " ".join(sys.argv[1:] if argv is None else argv),
           "machine": machine, "machine_line": machine_line(machine), "grid": grid, "probes": probes,
           "seconds": round(time.time() - t0, 1)}
    stem = "bench_probe" + (f"_{a.tag}" if a.tag else "")
    a.results.mkdir(parents=True, exist_ok=True)
    (a.results / f"{stem}.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    (a.results / f"{stem}.md").write_text(markdown(res), encoding="utf-8")
    print(f"saved {a.results / stem}.json / .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
