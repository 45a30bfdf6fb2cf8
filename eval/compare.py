"""Adapt-∞ against the baselines on one stream, with the cost of selection.

    python eval/compare.py                      # run every missing/unfinished run, then the table
    python eval/compare.py --background         # the same, detached (log: <runs-dir>/compare.log)
    python eval/compare.py --assemble-only      # only the table, from the runs that finished
    python eval/compare.py --config configs/smoke.yaml --runs-dir /tmp/cmp --results /tmp/cmp   # a quick check

Each strategy is a run of the same loop (`lifelong run`) with the same seeds
and differs only in the overrides below, so every run is resumable on its own:
re-running this script continues where it stopped. The table goes to
``eval/results/compare.md`` (and ``.json``), the overlaid dashboard of all runs
to ``eval/results/compare.html``. Each row carries a digest of the run's
selections (every round's selected ids), so a re-run can be checked against it.

The two ``adapt_inf_reuse*`` rows are not the paper's algorithm: they re-score
only new samples each round (``score.refresh=0``) and reuse older samples'
scores, the second also without the image-grounding expert (whose blank-image
forward is about half of the scoring pass). They measure what the selection
cost target costs in quality.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "eval" / "results"

# name -> overrides of the base config. Budgets are the base config's (25% of
# the pool per round unless the config says otherwise); only one run prunes.
STRATEGIES: dict[str, list[str]] = {
    "sequential": ["select.strategy=sequential", "prune.cap=null"],
    "full": ["select.strategy=full", "prune.cap=null"],
    "random": ["select.strategy=random", "prune.cap=null"],
    "ppl": ["select.strategy=ppl", "prune.cap=null"],
    "el2n": ["select.strategy=el2n", "prune.cap=null"],
    "adapt_inf": ["select.strategy=adapt_inf", "prune.cap=null"],
    "adapt_inf_prune": ["select.strategy=adapt_inf"],  # the base config's cap
    "multitask": ["select.strategy=multitask", "prune.cap=null"],
    "adapt_inf_reuse": ["select.strategy=adapt_inf", "prune.cap=null", "score.refresh=0"],
    "adapt_inf_reuse_noig": ["select.strategy=adapt_inf", "prune.cap=null", "score.refresh=0",
                             "score.experts=[ppl,el2n,entropy,grand,random]"],
}


def run_dir(runs_dir: Path, name: str) -> Path:
    return runs_dir / f"cmp_{name}"


def is_done(d: Path) -> bool:
    hist = d / "metrics" / "history.json"
    if not hist.exists():
        return False
    h = json.loads(hist.read_text())
    return len(h.get("accuracy", [])) == len(h.get("tasks", [])) + 1


def run_all(config: Path, runs_dir: Path, names: list[str], extra: list[str]) -> None:
    for name in names:
        d = run_dir(runs_dir, name)
        if is_done(d):
            print(f"[{name}] done already")
            continue
        cmd = [sys.executable, "-m", "lifelong.cli", "run", str(config), f"name=cmp_{name}",
               f"runs_dir={runs_dir}", *STRATEGIES[name], *extra]
        print(f"[{name}] {' '.join(cmd[3:])}", flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)


def selection_digest(d: Path, n_rounds: int) -> str:
    """sha256 (12 hex) of every round's selected ids, in round order: equal digests = equal selections."""
    h = hashlib.sha256()
    for t in range(1, n_rounds + 1):
        path = d / "rounds" / str(t) / "select" / "selection.json"
        ids = json.loads(path.read_text()).get("ids", []) if path.exists() else []
        h.update(json.dumps([t, ids]).encode())
    return h.hexdigest()[:12]


def summarize(d: Path, reference: np.ndarray | None) -> dict:
    from lifelong.evaluation.history import load_history
    from lifelong.evaluation.metrics import summary

    h = load_history(d)
    a = h.accuracy_matrix()
    s = summary(a, reference)["final"]
    rounds = h.rounds
    sel_s = [r.stage_seconds.get("score", 0.0) + r.stage_seconds.get("select", 0.0) for r in rounds]
    train_s = [r.stage_seconds.get("train", 0.0) for r in rounds]
    trained = [r for r in rounds if r.stage_seconds.get("train", 0.0) > 0]
    scored = []
    for t in range(1, len(rounds) + 1):
        done = d / "rounds" / str(t) / "score" / "done"
        scored.append(int(json.loads(done.read_text()).get("n") or 0) if done.exists() else 0)
    return {
        "avg_acc": s.get("avg_acc"), "forgetting": s.get("forgetting"), "bwt": s.get("bwt"), "fwt": s.get("fwt"),
        "relative_gain": s.get("relative_gain"),
        "samples_trained": int(sum(r.selected for r in rounds)),
        "selection_s_per_round": float(np.mean(sel_s)) if sel_s else None,
        "train_s_per_round": float(np.mean([r.stage_seconds["train"] for r in trained])) if trained else None,
        "selection_over_training": (float(np.sum(sel_s) / np.sum(train_s)) if np.sum(train_s) > 0 else None),
        "final_pool": rounds[-1].pool_size if rounds else None,
        "samples_scored": int(sum(scored)),
        "per_round": [{"round": t, "pool": r.pool_size, "selected": r.selected, "scored": n,
                       "selection_s": round(a, 2), "train_s": round(r.stage_seconds.get("train", 0.0), 2)}
                      for t, (r, n, a) in enumerate(zip(rounds, scored, sel_s), start=1)],
        "selections_sha256": selection_digest(d, len(rounds)),
    }


BOOTSTRAP = 1000


def _ci(x) -> str:
    from lifelong.evaluation.bootstrap import interval

    lo, hi = interval(x)
    return "—" if lo != lo else f"[{lo:+.3f}, {hi:+.3f}]"


def uncertainty_sections(runs_dir: Path, done: list[str], rows: dict) -> tuple[list[str], list[str]]:
    """Markdown: 95% intervals per run and the issue's targets, from a paired bootstrap over the questions."""
    from lifelong.evaluation.bootstrap import interval, paired_bootstrap

    if not done:
        return [], []
    draws = paired_bootstrap({n: run_dir(runs_dir, n) for n in done}, n=BOOTSTRAP, seed=0)
    for n in done:
        rows[n]["avg_acc_ci95"] = interval(draws[n]["avg_acc"])
        rows[n]["forgetting_ci95"] = interval(draws[n]["forgetting"])
    unc = ["", f"95% intervals: paired bootstrap over the held-out questions ({BOOTSTRAP} resamples, the same "
           "for every run).", "", "| strategy | final avg acc | 95% CI | forgetting | 95% CI |", "|---|---|---|---|---|"]
    for n in done:
        r = rows[n]
        fa = "—" if r["avg_acc"] is None else f"{r['avg_acc']:.3f}"
        ff = "—" if r["forgetting"] is None else f"{r['forgetting']:.3f}"
        unc.append(f"| {n} | {fa} | {_ci(draws[n]['avg_acc'])} | {ff} | {_ci(draws[n]['forgetting'])} |")

    def verdict(diff: np.ndarray) -> str:
        lo, hi = interval(diff)
        point = float(np.nanmean(diff))
        if lo != lo:
            return "—"
        if lo > 0:
            return f"**met** ({point:+.3f}, 95% CI {_ci(diff)})"
        if point > 0:
            return f"met on the point estimate but within noise ({point:+.3f}, 95% CI {_ci(diff)})"
        return f"**not met** ({point:+.3f}, 95% CI {_ci(diff)})"

    tg = ["", "Targets (difference > 0 means the target holds):", ""]
    if "adapt_inf" in done and "sequential" in done:
        d = draws["sequential"]["forgetting"] - draws["adapt_inf"]["forgetting"]
        tg.append(f"- forgetting of sequential − forgetting of adapt_inf: {verdict(d)}")
        rows["adapt_inf"]["target_forgetting_vs_sequential_ci95"] = interval(d)
    if "adapt_inf" in done and "random" in done:
        d = draws["adapt_inf"]["avg_acc"] - draws["random"]["avg_acc"]
        tg.append(f"- final avg acc of adapt_inf − that of random at the same budget: {verdict(d)}")
        rows["adapt_inf"]["target_acc_vs_random_ci95"] = interval(d)
    for n in [x for x in done if x.startswith("adapt_inf")]:
        r = rows[n]
        ratios = [x["selection_s"] / x["train_s"] for x in r["per_round"] if x["train_s"] > 0]
        if ratios and r["selection_over_training"] is not None:
            ok = "**met**" if max(ratios) <= 0.5 else "**not met**"
            tg.append(f"- {n}: selection / training time ≤ 0.5 in every round: {ok} (whole run "
                      f"{r['selection_over_training']:.2f}, per round {min(ratios):.2f}–{max(ratios):.2f})")
    return unc, (tg if len(tg) > 3 else [])


def assemble(runs_dir: Path, names: list[str], command: str, results: Path = RESULTS) -> str:
    from lifelong.evaluation.dashboard import write_dashboard
    from lifelong.evaluation.history import load_history

    done = [n for n in names if is_done(run_dir(runs_dir, n))]
    ref = None
    if "multitask" in done:
        ref = load_history(run_dir(runs_dir, "multitask")).accuracy_matrix()[-1]
    rows = {n: summarize(run_dir(runs_dir, n), ref) for n in done}

    def f(x, fmt="{:.3f}"):
        return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else fmt.format(x)

    lines = [
        "| strategy | final avg acc | forgetting | BWT | FWT | rel. gain vs multitask (%) | samples trained | "
        "samples scored | selection s/round | training s/round | selection / training | selections (sha256) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, r in rows.items():
        lines.append(f"| {n} | {f(r['avg_acc'])} | {f(r['forgetting'])} | {f(r['bwt'])} | {f(r['fwt'])} | "
                     f"{f(r['relative_gain'], '{:.1f}')} | {r['samples_trained']} | {r['samples_scored']} | "
                     f"{f(r['selection_s_per_round'], '{:.1f}')} | {f(r['train_s_per_round'], '{:.1f}')} | "
                     f"{f(r['selection_over_training'], '{:.2f}')} | `{r['selections_sha256']}` |")
    per_round = []
    for n, r in rows.items():
        if not r["samples_scored"]:
            continue
        per_round += [f"**{n}**: " + ", ".join(
            f"r{x['round']} {x['selection_s']:.0f}/{x['train_s']:.0f} s ({x['scored']} scored, {x['selected']} trained)"
            for x in r["per_round"]), ""]
    uncertainty, targets = uncertainty_sections(runs_dir, done, rows)
    missing = [n for n in names if n not in done]
    hw = f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_version()}"
    md = "\n".join([
        "# Adapt-∞ against the baselines", "",
        f"Command: `{command}`", f"Hardware: {hw}", "",
        *lines, "",
        "Selection time = scoring pass (sketches + experts) + clustering/routing/sampling; "
        "forgetting/BWT/FWT as in DESIGN.md; relative gain = final accuracy / multitask's, per task, averaged. "
        "Selection / training = total selection seconds over total training seconds of the run.",
        *(["", "Selection / training seconds per round:", "", *per_round] if per_round else []),
        *uncertainty, *targets,
        *( ["", f"Not finished yet: {', '.join(missing)}"] if missing else []),
    ]) + "\n"
    results.mkdir(parents=True, exist_ok=True)
    (results / "compare.md").write_text(md)
    (results / "compare.json").write_text(json.dumps({"command": command, "hardware": hw, "runs": rows}, indent=1))
    if done:
        write_dashboard([run_dir(runs_dir, n) for n in done], results / "compare.html")
    return md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml")
    p.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "compare")
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated subset")
    p.add_argument("--results", type=Path, default=RESULTS, help="where compare.md/.json/.html go")
    p.add_argument("--assemble-only", action="store_true")
    p.add_argument("--background", action="store_true", help="detach; follow <runs-dir>/compare.log")
    p.add_argument("overrides", nargs="*", help="overrides applied to every run (key.sub=value)")
    args = p.parse_args(argv)
    names = args.strategies.split(",")
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        p.error(f"unknown strategies {unknown}; known: {list(STRATEGIES)}")
    command = "python eval/compare.py " + " ".join(
        ([f"--config {args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config}"]
         if args.config != ROOT / "configs" / "demo.yaml" else [])
        + ([f"--strategies {args.strategies}"] if names != list(STRATEGIES) else [])
        + [f"'{o}'" if "[" in o else o for o in args.overrides])
    if args.background:
        args.runs_dir.mkdir(parents=True, exist_ok=True)
        log = open(args.runs_dir / "compare.log", "a")
        rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--background"]
        proc = subprocess.Popen([sys.executable, __file__, *rest], stdout=log, stderr=subprocess.STDOUT,
                                cwd=ROOT, start_new_session=True)
        print(f"started in the background (pid {proc.pid}); log: {args.runs_dir / 'compare.log'}")
        return 0
    if not args.assemble_only:
        run_all(args.config, args.runs_dir, names, args.overrides)
    print(assemble(args.runs_dir, names, command.strip(), args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
