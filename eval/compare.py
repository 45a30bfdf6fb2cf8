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


def uncertainty_sections(runs_dir: Path, done: list[str], rows: dict, where=None, key: str = "",
                         title: str = "") -> tuple[list[str], list[str]]:
    """Markdown: 95% intervals per run and the quality targets, from a paired bootstrap over the questions.

    where(run_dir, t): the predictions file of round t (default: the run's own); key: suffix of the
    JSON fields written into ``rows`` (so a re-evaluation does not overwrite the run's own figures).
    """
    from lifelong.evaluation.bootstrap import (accuracy_matrix, interval, paired_bootstrap, question_scores,
                                               run_predictions)
    from lifelong.evaluation.history import load_history
    from lifelong.evaluation.metrics import compute_all

    if not done:
        return [], []
    where = where or run_predictions
    dirs = {n: run_dir(runs_dir, n) for n in done}
    draws = paired_bootstrap(dirs, n=BOOTSTRAP, seed=0, where=where)
    h = load_history(dirs[done[0]])
    n_rounds = h.accuracy_matrix().shape[0] - 1
    qs = {n: question_scores(d, h.tasks, n_rounds, where) for n, d in dirs.items()}
    point = {n: compute_all(accuracy_matrix(q, h.tasks)) for n, q in qs.items()}
    n_q = {t: len(v[0]) for t, v in qs[done[0]].items()}
    unc = ["", title or f"95% intervals: paired bootstrap over the held-out questions ({BOOTSTRAP} resamples, "
           "the same for every run).",
           "", f"Questions per task: {', '.join(f'{t} {k}' for t, k in n_q.items())}.", "",
           "| strategy | final avg acc | 95% CI | forgetting | 95% CI |", "|---|---|---|---|---|"]
    for n in done:
        pa, pf = point[n]["avg_acc"], point[n]["forgetting"]
        rows[n][f"avg_acc{key}"], rows[n][f"forgetting{key}"] = (None if pa != pa else pa), (None if pf != pf else pf)
        rows[n][f"avg_acc{key}_ci95"] = interval(draws[n]["avg_acc"])
        rows[n][f"forgetting{key}_ci95"] = interval(draws[n]["forgetting"])
        fa = "—" if pa != pa else f"{pa:.3f}"
        ff = "—" if pf != pf else f"{pf:.3f}"
        unc.append(f"| {n} | {fa} | {_ci(draws[n]['avg_acc'])} | {ff} | {_ci(draws[n]['forgetting'])} |")

    def verdict(diff: np.ndarray, est: float) -> str:
        lo, hi = interval(diff)
        if lo != lo:
            return "—"
        if lo > 0:
            return f"**met** ({est:+.3f}, 95% CI {_ci(diff)})"
        if est > 1e-9:
            return f"met on the point estimate but within noise ({est:+.3f}, 95% CI {_ci(diff)})"
        return f"**not met** ({est:+.3f}, 95% CI {_ci(diff)})"

    tg = ["", "Targets (difference > 0 means the target holds):", ""]
    for name in [x for x in done if x.startswith("adapt_inf")]:
        if "sequential" in done:
            d = draws["sequential"]["forgetting"] - draws[name]["forgetting"]
            est = point["sequential"]["forgetting"] - point[name]["forgetting"]
            tg.append(f"- forgetting of sequential − forgetting of {name}: {verdict(d, est)}")
            rows[name][f"target_forgetting_vs_sequential{key}_ci95"] = interval(d)
        if "random" in done:
            d = draws[name]["avg_acc"] - draws["random"]["avg_acc"]
            est = point[name]["avg_acc"] - point["random"]["avg_acc"]
            tg.append(f"- final avg acc of {name} − that of random at the same budget: {verdict(d, est)}")
            rows[name][f"target_acc_vs_random{key}_ci95"] = interval(d)
    return unc, (tg if len(tg) > 3 else [])


def time_targets(done: list[str], rows: dict) -> list[str]:
    out = []
    for n in [x for x in done if x.startswith("adapt_inf")]:
        r = rows[n]
        ratios = [x["selection_s"] / x["train_s"] for x in r["per_round"] if x["train_s"] > 0]
        if ratios and r["selection_over_training"] is not None:
            ok = "**met**" if max(ratios) <= 0.5 else "**not met**"
            out.append(f"- {n}: selection / training time ≤ 0.5 in every round: {ok} (whole run "
                       f"{r['selection_over_training']:.2f}, per round {min(ratios):.2f}–{max(ratios):.2f})")
    return ["", "Selection cost target:", "", *out] if out else []


def reevaluate(runs_dir: Path, names: list[str], questions: int) -> None:
    """Every evaluated round of these runs again, on ``questions`` held-out questions per task (resumable)."""
    from lifelong.evaluation.history import load_history

    for n in names:
        d = run_dir(runs_dir, n)
        a = load_history(d).accuracy_matrix()
        for t in range(a.shape[0]):
            out = reeval_path(d, t, questions)
            if out.exists() or not np.isfinite(a[t]).any():
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".tmp")
            print(f"[{n}] round {t}: {questions} questions per task", flush=True)
            subprocess.run([sys.executable, "-m", "lifelong.cli", "eval", "--run", str(d), "--round", str(t),
                            "--max-samples", str(questions), "--out", str(tmp), "--no-progress"],
                           check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
            os.replace(tmp, out)


def reeval_path(d: Path, t: int, questions: int) -> Path:
    return d / f"reeval_q{questions}" / f"round_{t}.jsonl"


def assemble(runs_dir: Path, names: list[str], command: str, results: Path = RESULTS, questions: int = 0,
             questions_for: list[str] | None = None) -> str:
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
    targets += time_targets(done, rows)
    if questions:
        more = [n for n in (questions_for or done) if n in done]
        u2, t2 = uncertainty_sections(
            runs_dir, more, rows, where=lambda d, t: reeval_path(d, t, questions), key=f"_q{questions}",
            title=f"Re-evaluated: every round's adapter of {', '.join(more)} on {questions} held-out questions "
                  f"per task (`--questions {questions}`), same paired bootstrap.")
        targets += u2 + t2
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
    p.add_argument("--questions", type=int, default=0,
                   help="also re-evaluate every round's adapter on this many questions per task (tighter intervals)")
    p.add_argument("--questions-for", default="", help="comma-separated runs to re-evaluate (default: all)")
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
        + ([f"--questions {args.questions}"] if args.questions else [])
        + ([f"--questions-for {args.questions_for}"] if args.questions_for else [])
        + [f"'{o}'" if "[" in o else o for o in args.overrides])
    if args.background:
        args.runs_dir.mkdir(parents=True, exist_ok=True)
        log = open(args.runs_dir / "compare.log", "a")
        rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--background"]
        proc = subprocess.Popen([sys.executable, __file__, *rest], stdout=log, stderr=subprocess.STDOUT,
                                cwd=ROOT, start_new_session=True)
        print(f"started in the background (pid {proc.pid}); log: {args.runs_dir / 'compare.log'}")
        return 0
    qfor = [n for n in args.questions_for.split(",") if n] or None
    if not args.assemble_only:
        run_all(args.config, args.runs_dir, names, args.overrides)
        if args.questions:
            reevaluate(args.runs_dir, [n for n in (qfor or names) if is_done(run_dir(args.runs_dir, n))],
                       args.questions)
    print(assemble(args.runs_dir, names, command.strip(), args.results, args.questions, qfor))
    return 0


if __name__ == "__main__":
    sys.exit(main())
