"""Adapt-∞ against the baselines on one stream, over seeds, with the cost of selection.

    python eval/compare.py                      # every missing (strategy, seed) on the clean stream, then the table
    python eval/compare.py --stream messy       # the same on the messy stream (configs/messy.yaml)
    python eval/compare.py --commit             # ... committing each result file the moment it is written
    python eval/compare.py --background --commit   # the same, detached (log: <runs-dir>/compare.log)
    python eval/compare.py --assemble-only      # only the table, from the result files
    python eval/compare.py --status             # done / stopped part way (resumable) / not started
    python eval/compare.py --config configs/smoke.yaml --runs-dir /tmp/cmp --results /tmp/cmp   # a quick check

A stream is a base config (``STREAMS``) and a results folder, ``eval/results/<stream>/``.
Each (strategy, seed) is a run of the same loop (`lifelong run ... seed=S`) that
differs only in the overrides below, resumable on its own. When it finishes,
its per-question scores, cost figures and what each round chose (per dataset,
task, defect kind and cluster: ``rounds/<t>/report/composition.json``) go to
``<results>/runs/<strategy>_s<seed>.json`` (with a digest of its config, of
the built-in stream's data and of the kernel it ran on: the base's dtype and
the CPU's family and model, so results of different kernels are never
paired); a
(strategy, seed) whose file is there with the same config digest is not run
again, so a long comparison accumulates over several sittings on 2 cores
(``--commit`` makes each file a commit of its own at once); a run stopped
part way (the sitting ended) resumes at the round where it stopped. Each
result also records how much of the machine its run had (CPU share,
:class:`lifelong.machine.CpuUse`), and the table names the runs that shared
it, whose seconds are inflated. The table
(``<results>/compare.md`` and ``.json``) is assembled from the result files
alone: point estimates are means over seeds, 95% intervals come from a
bootstrap over seeds and questions together
(:mod:`lifelong.evaluation.multiseed`), relative gain is on pooled accuracy
(correct answers over questions asked, every task counted). The dashboard
of the comparison, one line per strategy with its accuracy matrix averaged
over its seeds, goes to ``<results>/compare.html``; it too comes from the
result files alone, so it is current whatever run directories are at hand.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from lifelong.machine import SHARED_BELOW, CpuUse, describe_machine, machine_line, shared, use_line
from lifelong.layout import RunLayout, read_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "eval" / "results"
BOOTSTRAP = 1000
# stream -> its base config; results go to eval/results/<stream>/, runs to runs/compare/<stream>/.
STREAMS: dict[str, Path] = {"clean": ROOT / "configs" / "demo.yaml", "messy": ROOT / "configs" / "messy.yaml"}

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
    # Yardsticks: the selector that reads the defect flags, and uniform selection + uniform eviction to the cap.
    "oracle": ["select.strategy=oracle", "prune.cap=null"],
    "random_prune": ["select.strategy=random_prune"],  # the base config's cap
    "multitask": ["select.strategy=multitask", "prune.cap=null"],
    # Not the paper's algorithm: re-score only new samples (and, second, without the grounding expert).
    "adapt_inf_reuse": ["select.strategy=adapt_inf", "prune.cap=null", "score.refresh=0"],
    "adapt_inf_reuse_noig": ["select.strategy=adapt_inf", "prune.cap=null", "score.refresh=0",
                             "score.experts=[ppl,el2n,entropy,grand,random]"],
}
DEFAULT_STRATEGIES = "sequential,random,random_prune,oracle,adapt_inf,adapt_inf_prune,multitask,full,ppl,el2n"
# The gate of a stream that measures selection: a perfect selector (oracle) beats a uniform one (random)
# by at least this much final average accuracy, with its 95% interval above 0.
GATE = 0.08
# The base config as it is (Adapt-inf with its pool cap): what `make demo` runs.
DEMO = "adapt_inf_prune"
# The demo's learning goals: every task >= 0.3 right after its own round, their
# mean >= 0.6, and the same stream under sequential forgets >= 0.2.
DEMO_GOALS = {"min_diagonal": 0.3, "learning_acc": 0.6, "sequential_forgetting": 0.2}
ONE_SEED = "ppl,el2n,adapt_inf_reuse,adapt_inf_reuse_noig"  # run on the first seed only by default
# Code changes that alter what a strategy selects, oldest first. The digest
# covers the config and the stream's data, not the code, so each change enters
# the digest of the strategies it affects: their earlier results turn stale
# (listed under the table, not counted) and are run again.
METHOD_CHANGES: dict[str, tuple[str, ...]] = {
    # routing and CCS see log perplexity, as the reference does (lifelong/selection/experts.py)
    "ppl-log-scale": ("ppl", "adapt_inf", "adapt_inf_prune", "adapt_inf_reuse", "adapt_inf_reuse_noig"),
}


def run_dir(runs_dir: Path, name: str, seed: int) -> Path:
    return runs_dir / f"cmp_{name}_s{seed}"


def run_overrides(name: str, seed: int, extra: list[str]) -> list[str]:
    return [*STRATEGIES[name], f"seed={seed}", *extra]


_STREAMS: dict[str, str] = {}  # built-in stream settings -> digest of its data


def resolved_config(config: Path, name: str, seed: int, extra: list[str]):
    """The run config of one (strategy, seed), less where it lives (name and runs_dir are placeholders)."""
    from lifelong.run_config import load_run_config

    return load_run_config(config, run_overrides(name, seed, extra) + ["name=x", "runs_dir=x"])


def kernel(config: Path, name: str, seed: int, extra: list[str]) -> str:
    """What the numbers' kernels depend on: the base's dtype here and the CPU's family and model."""
    m = describe_machine()
    return f"{base_dtype(config, name, seed, extra)} on {m.get('cpu_generation') or m.get('cpu')}"


def config_sha(config: Path, name: str, seed: int, extra: list[str]) -> str:
    """Digest (12 hex) of the resolved run config, less where it lives, of the
    built-in stream's data, of the kernel (:func:`kernel`) and of the
    ``METHOD_CHANGES`` that affect the strategy: equal digests = the same
    experiment. A change to the stream's generators changes the data, not the
    config, so it counts too; a run in bf16 and one in fp32, or on another CPU
    generation, answer differently for the same seed, so they are not paired."""
    from lifelong.data.stream import stream_digest
    from lifelong.run_config import dump_run_config

    cfg = resolved_config(config, name, seed, extra)
    h = hashlib.sha256(dump_run_config(cfg).encode())
    s = cfg.stream
    if s.builtin != "none":
        key = json.dumps([s.builtin, s.seed, repr(s.builtin_config)])
        if key not in _STREAMS:
            _STREAMS[key] = stream_digest(s.builtin, s.seed, s.builtin_config)
        h.update(_STREAMS[key].encode())
    h.update(kernel(config, name, seed, extra).encode())
    for change, affected in METHOD_CHANGES.items():
        if name in affected:
            h.update(change.encode())
    return h.hexdigest()[:12]


def base_dtype(config: Path, name: str, seed: int, extra: list[str]) -> str:
    """The dtype the run's frozen base takes on this machine (``model.dtype: auto`` resolved)."""
    from lifelong.machine import resolve_dtype

    cfg = resolved_config(config, name, seed, extra)
    return resolve_dtype(cfg.model.dtype, cfg.model.device)


def selection_digest(d: Path, n_rounds: int) -> str:
    """sha256 (12 hex) of every round's selected ids, in round order: equal digests = equal selections."""
    h = hashlib.sha256()
    for t in range(1, n_rounds + 1):
        path = RunLayout(d).selection(t)
        ids = json.loads(path.read_text()).get("ids", []) if path.exists() else []
        h.update(json.dumps([t, ids]).encode())
    return h.hexdigest()[:12]


def costs(d: Path) -> dict:
    """Samples trained/scored and selection/training seconds of a finished run."""
    from lifelong.evaluation.history import load_history

    rounds = load_history(d).rounds
    sel_s = [r.stage_seconds.get("score", 0.0) + r.stage_seconds.get("select", 0.0) for r in rounds]
    train_s = [r.stage_seconds.get("train", 0.0) for r in rounds]
    layout = RunLayout(d)
    scored = [int(layout.stage_info(t, "score").get("n") or 0) for t in range(1, len(rounds) + 1)]
    new = [layout.stage_info(t, "select").get("new_selected") for t in range(1, len(rounds) + 1)]
    return {
        "samples_trained": int(sum(r.selected for r in rounds)), "samples_scored": int(sum(scored)),
        "selection_s": float(sum(sel_s)), "train_s": float(sum(train_s)), "rounds": len(rounds),
        "final_pool": rounds[-1].pool_size if rounds else None,
        "per_round": [{"round": t, "pool": r.pool_size, "selected": r.selected, "new_selected": k, "scored": n,
                       "selection_s": round(s, 2), "train_s": round(r.stage_seconds.get("train", 0.0), 2)}
                      for t, (r, n, k, s) in enumerate(zip(rounds, scored, new, sel_s), start=1)],
        "selections_sha256": selection_digest(d, len(rounds)),
        # What each round chose, kept for good (the run directory is not): rounds/<t>/report/composition.json.
        "composition": [read_json(layout.composition(t)) for t in range(1, len(rounds) + 1)],
    }


def commit(path: Path, tries: int = 30) -> None:
    """The result file as a commit of its own (the comparison accumulates across sessions). Another git
    command in the same checkout holds index.lock for a moment: wait for it rather than lose the commit."""
    import time

    rel = path.relative_to(ROOT)
    for attempt in range(tries):
        add = subprocess.run(["git", "add", str(rel)], cwd=ROOT, capture_output=True, text=True)
        if add.returncode == 0 and subprocess.run(["git", "diff", "--cached", "--quiet", "--", str(rel)],
                                                  cwd=ROOT).returncode == 0:
            return  # the same bytes are committed already
        done = add.returncode == 0 and subprocess.run(
            ["git", "commit", "-q", "-m", f"Comparison result: {path.stem}", "--", str(rel)], cwd=ROOT,
            capture_output=True, text=True).returncode == 0
        if done:
            return
        time.sleep(2)
    raise RuntimeError(f"could not commit {rel} after {tries} tries (is another git command stuck?)")


def finished_rounds(d: Path) -> int:
    """Rounds of the run in ``d`` whose history is written (0 when it never started)."""
    from lifelong.evaluation.history import load_history

    return len(load_history(d).rounds) if RunLayout(d).history.exists() else 0


def sitting_rounds(use: dict) -> str:
    """The rounds a result's CPU share covers, in words."""
    first, last = use["first_round"], use["last_round"]
    return f"rounds {first}–{last}" if first <= last else "no round: all finished in an earlier sitting"


def run_all(config: Path, runs_dir: Path, plan: list[tuple[str, int]], extra: list[str], results: Path,
            do_commit: bool) -> None:
    from lifelong.evaluation.multiseed import result_from_run, result_path, save_result

    for name, seed in plan:
        sha = config_sha(config, name, seed, extra)
        path = result_path(results / "runs", name, seed)
        if path.exists() and json.loads(path.read_text()).get("config_sha") == sha:
            print(f"[{name} seed {seed}] result there already ({path.relative_to(results)})", flush=True)
            continue
        d = run_dir(runs_dir, name, seed)
        cmd = [sys.executable, "-m", "lifelong.cli", "run", str(config), f"name={d.name}", f"runs_dir={runs_dir}",
               *run_overrides(name, seed, extra)]
        print(f"[{name} seed {seed}] {' '.join(cmd[3:])}", flush=True)
        first = finished_rounds(d) + 1  # a run stopped in an earlier sitting resumes after its last round
        with CpuUse() as use:  # whether the run had the machine to itself: its seconds are compared
            subprocess.run(cmd, check=True, cwd=ROOT)
        # The share covers this sitting only: rounds first..last of the run.
        sitting = {**use.record(), "first_round": first, "last_round": finished_rounds(d)}
        res = result_from_run(d, name, seed, sha, {"costs": costs(d), "machine": describe_machine(),
                                                   "dtype": base_dtype(config, name, seed, extra),
                                                   "cpu_use": sitting})
        print(f"[{name} seed {seed}] {use_line(res['cpu_use'])}", flush=True)
        save_result(res, results / "runs")
        if do_commit:
            commit(path)


def status(config: Path, runs_dir: Path, plan: list[tuple[str, int]], extra: list[str], results: Path) -> str:
    """Where each planned (strategy, seed) stands: its result, a run stopped part way (the next
    ``compare.py`` resumes it at the round where it stopped), or nothing yet."""
    from lifelong.evaluation.multiseed import metrics_of, result_path, score_tensor
    from lifelong.runlock import running

    lines, todo = [], 0
    for name, seed in plan:
        path = result_path(results / "runs", name, seed)
        d = run_dir(runs_dir, name, seed)
        if path.exists():
            res = json.loads(path.read_text())
            if res.get("config_sha") == config_sha(config, name, seed, extra):
                final = metrics_of(score_tensor(res), res.get("learned"))["avg_acc"]  # as the table computes it
                lines.append(f"{name} seed {seed}: done ({path.relative_to(results)}, final avg acc {final:.3f})")
                continue
            stale = " (its result there is stale: another config, stream or method change)"
        else:
            stale = ""
        todo += 1
        if RunLayout(d).history.exists():
            from lifelong.data.stream import read_manifest

            cfg = resolved_config(config, name, seed, extra)
            total = (len(read_manifest(RunLayout(d).data)) if cfg.stream.builtin != "none" else 0) \
                + len(cfg.stream.datasets)
            done = finished_rounds(d)
            who = running(d)
            lines.append(f"{name} seed {seed}: {done} of {total} rounds finished in {d}{stale}; " + (
                f"running now (pid {who['pid']}, since {who.get('since', '?')})" if who else
                "stopped: the next compare.py resumes it"))
        else:
            lines.append(f"{name} seed {seed}: not started{stale}")
    return "\n".join([*lines, f"{todo} of {len(plan)} still to run"])


def defects_trained(costs: dict) -> float | None:
    """Share of flagged defects among every sample the run trained on (all rounds); None when its
    result predates the rounds' composition records."""
    comps = [c for c in costs.get("composition") or [] if c]
    n = sum(c["selected"] for c in comps)
    if not comps or not n:
        return None
    return sum(c["selected"] * c["defects"]["selected"].get("any", 0.0) for c in comps) / n


def gate(draws: dict, point: dict) -> tuple[dict, list[str]]:
    """The stream's gate (oracle − random ≥ ``GATE`` with its interval above 0) and Adapt-∞'s targets
    against its uniform counterparts, as verdicts for the json and lines for the table."""
    out, lines = {}, []

    def diff(a, b, key="avg_acc"):
        return draws[a][key] - draws[b][key], point[a][key] - point[b][key]

    if "oracle" in draws and "random" in draws:
        d, p = diff("oracle", "random")
        above = verdict(d, p)
        out["oracle_above_random"] = {"verdict": above, "difference": p, "threshold": GATE,
                                      "passed": bool(p >= GATE and above.startswith("**met**"))}
        lines.append(f"- gate: final avg acc of oracle − that of random ≥ {GATE} with its interval above 0: "
                     f"{'**passed**' if out['oracle_above_random']['passed'] else '**not passed**'} ({above})")
    for a, b in (("adapt_inf_prune", "random_prune"), ("adapt_inf", "random")):
        if a in draws and b in draws:
            d, p = diff(a, b)
            out[f"{a}_above_{b}"] = verdict(d, p)
            lines.append(f"- final avg acc of {a} − that of {b} (same budget{' and cap' if 'prune' in a else ''}):"
                         f" {out[f'{a}_above_{b}']}")
            d, p = diff(b, a, "forgetting")
            out[f"{a}_forgets_less_than_{b}"] = verdict(d, p)
            lines.append(f"- forgetting of {b} − forgetting of {a}: {out[f'{a}_forgets_less_than_{b}']}")
    return out, lines


def verdict(draws: np.ndarray, point: float, threshold: float = 0.0, fmt: str = "{:+.3f}") -> str:
    """met (interval above the threshold) / not met (below) / within noise."""
    from lifelong.evaluation.bootstrap import interval

    lo, hi = interval(draws)
    if lo != lo:
        return "—"
    ci = f"{fmt.format(point)}, 95% CI [{fmt.format(lo)}, {fmt.format(hi)}]"
    if lo > threshold:
        return f"**met** ({ci})"
    if hi < threshold:
        return f"**not met** ({ci})"
    return f"within noise ({ci})"


def assemble(names: list[str], command: str, results: Path, expected: dict[tuple[str, int], str]) -> str:
    """compare.md / compare.json / compare.html from the result files."""
    from lifelong.evaluation.bootstrap import interval
    from lifelong.evaluation.multiseed import group, load_results, point_estimates, seed_question_bootstrap

    all_results = [r for r in load_results(results / "runs") if r["strategy"] in names]
    fresh = [r for r in all_results if expected.get((r["strategy"], r["seed"])) == r["config_sha"]]
    # A result of a (strategy, seed) asked for under another digest is stale; one of a seed
    # not asked for this time is left out, not stale.
    stale = sorted(f"{r['strategy']} seed {r['seed']}" for r in all_results
                   if r not in fresh and (r["strategy"], r["seed"]) in expected)
    other = sorted(f"{r['strategy']} seed {r['seed']}" for r in all_results if (r["strategy"], r["seed"]) not in expected)
    by = {n: rs for n, rs in group(fresh).items()}
    by = {n: by[n] for n in names if n in by}
    point = point_estimates(by) if by else {}
    draws = seed_question_bootstrap(by, n=BOOTSTRAP, seed=0) if by else {}
    ref = "multitask" if "multitask" in by else None

    def f(x, fmt="{:.3f}"):
        return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else fmt.format(x)

    def ci(x):
        lo, hi = interval(x)
        return "—" if lo != lo else f"[{lo:.3f}, {hi:.3f}]"

    rows, lines = {}, [
        "| strategy | seeds | final avg acc | 95% CI | forgetting | 95% CI | BWT | FWT | pooled acc | "
        "rel. gain vs multitask (%) | samples trained | defects trained | selection s/round | training s/round | "
        "selection / training |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, rs in by.items():
        p, dr = point[n], draws[n]
        c = [r["costs"] for r in rs]
        rg = rg_draws = None
        if ref:
            rg = 100 * p["pooled_acc"] / point[ref]["pooled_acc"] if point[ref]["pooled_acc"] else None
            with np.errstate(all="ignore"):
                rg_draws = 100 * dr["pooled_acc"] / draws[ref]["pooled_acc"]
        sel = float(np.mean([x["selection_s"] / x["rounds"] for x in c]))
        trn = float(np.mean([x["train_s"] / max(sum(1 for y in x["per_round"] if y["train_s"] > 0), 1) for x in c]))
        ratio = float(np.sum([x["selection_s"] for x in c]) / np.sum([x["train_s"] for x in c])) \
            if np.sum([x["train_s"] for x in c]) > 0 else None
        shares = [v for v in map(defects_trained, c) if v is not None]
        rows[n] = {"seeds": [r["seed"] for r in rs], **{k: (None if not np.isfinite(v) else v) for k, v in p.items()},
                   **{f"{k}_ci95": interval(dr[k]) for k in ("avg_acc", "forgetting", "pooled_acc")},
                   "relative_gain": rg, "relative_gain_ci95": interval(rg_draws) if rg_draws is not None else None,
                   "samples_trained": int(np.mean([x["samples_trained"] for x in c])),
                   "samples_scored": int(np.mean([x["samples_scored"] for x in c])),
                   "defects_trained": float(np.mean(shares)) if shares else None,
                   "selection_s_per_round": sel, "train_s_per_round": trn, "selection_over_training": ratio,
                   "selections_sha256": {str(r["seed"]): r["costs"]["selections_sha256"] for r in rs},
                   "per_seed": {str(r["seed"]): r["costs"] for r in rs}}
        lines.append(f"| {n} | {', '.join(map(str, rows[n]['seeds']))} | {f(p['avg_acc'])} | {ci(dr['avg_acc'])} | "
                     f"{f(p['forgetting'])} | {ci(dr['forgetting'])} | {f(p['bwt'])} | {f(p['fwt'])} | "
                     f"{f(p['pooled_acc'])} | {f(rg, '{:.1f}')} | {rows[n]['samples_trained']} | "
                     f"{f(rows[n]['defects_trained'], '{:.3f}')} | {sel:.1f} | "
                     f"{trn:.1f} | {f(ratio, '{:.2f}')} |")
    targets, tjson = [], {}
    if "adapt_inf" in by:
        a = "adapt_inf"
        if "sequential" in by:
            tjson["forgetting_below_sequential"] = verdict(
                draws["sequential"]["forgetting"] - draws[a]["forgetting"],
                point["sequential"]["forgetting"] - point[a]["forgetting"])
            targets.append(f"- forgetting of sequential − forgetting of adapt_inf > 0: "
                           f"{tjson['forgetting_below_sequential']}")
        if "random" in by:
            tjson["avg_acc_above_random"] = verdict(draws[a]["avg_acc"] - draws["random"]["avg_acc"],
                                                    point[a]["avg_acc"] - point["random"]["avg_acc"])
            targets.append(f"- final avg acc of adapt_inf − that of random at the same budget > 0: "
                           f"{tjson['avg_acc_above_random']}")
        if ref and rows[a]["relative_gain"] is not None:
            with np.errstate(all="ignore"):
                g = 100 * draws[a]["pooled_acc"] / draws[ref]["pooled_acc"]
            tjson["at_least_95pct_of_multitask"] = verdict(g, rows[a]["relative_gain"], threshold=95.0, fmt="{:.1f}")
            targets.append(f"- adapt_inf's pooled accuracy ≥ 95% of multitask's: {tjson['at_least_95pct_of_multitask']}")
    gjson_gate, gate_lines = gate(draws, point) if by else ({}, [])
    first = next(iter(by.values()))[0] if by else None
    q_per_task = {t: len(q) for t, q in first["questions"].items()} if first else {}
    tasks = first["tasks"] if first else []
    diag_lines, goals, gjson = diagonal_section(by, point, draws, tasks, rows)
    missing = sorted(f"{n} seed {s}" for (n, s) in expected if not any(
        r["strategy"] == n and r["seed"] == s for r in fresh))
    on: dict[str, list[str]] = {}  # machine -> the (strategy, seed)s finished on it
    for r in sorted(fresh, key=lambda r: (r["seed"], r["strategy"])):
        where = machine_line(r.get("machine")) + (f", base {r['dtype']}" if r.get("dtype") else "")
        on.setdefault(where, []).append(f"{r['strategy']} s{r['seed']}")
    hw = "; ".join(f"{m} ({', '.join(rs)})" for m, rs in on.items()) or machine_line(describe_machine())
    # A run resumed in another sitting measures its last sitting only; a run before CpuUse measures nothing.
    busy = [f"{r['strategy']} s{r['seed']} ({r['cpu_use']['cpu_share']:.2f})"
            for r in fresh if shared(r.get("cpu_use"))]
    unmeasured = [f"{r['strategy']} s{r['seed']}" for r in fresh if not r.get("cpu_use")]
    resumed = [f"{r['strategy']} s{r['seed']} ({sitting_rounds(r['cpu_use'])})"
               for r in fresh if (r.get("cpu_use") or {}).get("first_round", 1) > 1]
    md = "\n".join([
        "# Adapt-∞ against the baselines, over seeds", "",
        f"Command: `{command}`", f"Hardware: {hw}", "",
        f"Questions per task: {', '.join(f'{t} {k}' for t, k in q_per_task.items()) or '—'}.", "",
        *lines, "",
        "Point estimates are means over the seeds; 95% intervals come from a bootstrap over seeds and held-out "
        f"questions together ({BOOTSTRAP} resamples; seeds paired across strategies run on the same seeds, "
        "questions the same for all). Forgetting/BWT/FWT as in docs/design.md; pooled acc = correct answers over "
        "questions asked in the final row; relative gain = pooled acc / multitask's pooled acc. Selection time "
        "= scoring pass + clustering/routing/sampling; selection / training = total seconds over total seconds.",
        *(["", f"Shared the machine (CPU share below {SHARED_BELOW}: its seconds are inflated, its accuracies "
               f"are not): {', '.join(busy)}."] if busy else []),
        *(["", "CPU share not recorded: every run here ran before it was measured."]
          if unmeasured and len(unmeasured) == len(fresh) else
          ["", f"CPU share not recorded (run before it was measured): {', '.join(unmeasured)}."]
          if unmeasured else []),
        *(["", f"CPU share of the last sitting only (runs resumed from an earlier one): {', '.join(resumed)}."]
          if resumed else []),
        *(["", "Targets (met: the 95% interval is on the right side; not met: on the wrong side):", "", *targets]
          if targets else []),
        *(["", "Selection against its yardsticks (defects trained = share of flagged samples among everything "
               "trained on, from each round's composition; the gate: a stream that cannot separate a perfect "
               "selector from a uniform one measures nothing):", "", *gate_lines] if gate_lines else []),
        *diag_lines,
        *(["", f"The demo's learning goals ({DEMO}, the base config as `make demo` runs it; sequential on the same "
                "stream):", "", *goals] if goals else []),
        *(["", f"Not run yet: {', '.join(missing)}"] if missing else []),
        *(["", "Ignored (run under another config, or before a change of the method in METHOD_CHANGES): "
               + ", ".join(stale)] if stale else []),
        *(["", "Left out (seeds not asked for by this command; their results are kept): " + ", ".join(other)]
          if other else []),
    ]) + "\n"
    results.mkdir(parents=True, exist_ok=True)
    (results / "compare.md").write_text(md)
    (results / "compare.json").write_text(json.dumps(
        {"command": command, "hardware": hw, "shared_machine": busy, "cpu_share_not_recorded": unmeasured,
         "cpu_share_last_sitting_only": resumed,
         "seeds": {n: r["seeds"] for n, r in rows.items()},
         "questions_per_task": q_per_task, "bootstrap": BOOTSTRAP, "targets": tjson, "gate": gjson_gate, "demo_goals": gjson,
         "runs": rows,
         "missing": missing, "stale": stale, "left_out": other}, indent=1))
    if by:
        from lifelong.evaluation.charts import DashboardConfig
        from lifelong.evaluation.dashboard import write_histories
        from lifelong.evaluation.multiseed import mean_history

        write_histories([mean_history(n, rs) for n, rs in by.items()], results / "compare.html",
                        DashboardConfig(title="Adapt-∞ against the baselines: accuracy matrices averaged over "
                                              "seeds (compare.md has the means over seeds with intervals)"))
    return md


def diagonal_section(by: dict, point: dict, draws: dict, tasks: list[str], rows: dict
                     ) -> tuple[list[str], list[str], dict]:
    """The table of each task right after its own round (means over seeds), and the demo's learning goals.

    Adds ``diagonal`` ({task: mean over seeds}) and ``learning_acc_ci95`` to the
    strategies' rows; returns (markdown lines, goal lines, goals for the json).
    """
    from lifelong.evaluation.bootstrap import interval

    with_diag = [n for n in by if np.isfinite(point[n]["learning_acc"])]
    # The tasks a round taught (an evaluation suite's have no diagonal cell).
    taught = [i for i in range(len(tasks)) if all(f"diag.{i}" in point[n] for n in with_diag)]
    lines = []
    for n in with_diag:
        rows[n]["diagonal"] = {tasks[i]: point[n][f"diag.{i}"] for i in taught}
        rows[n]["learning_acc_ci95"] = interval(draws[n]["learning_acc"])
    if with_diag:
        lines = ["", "Each task right after its own round (the diagonal a[i, i] of the accuracy matrix; means over "
                 "the seeds; learning acc = their mean, with its 95% interval):", "",
                 f"| strategy | {' | '.join(tasks[i] for i in taught)} | learning acc | 95% CI |",
                 f"|---|{'---|' * len(taught)}---|---|"]
        for n in with_diag:
            lo, hi = rows[n]["learning_acc_ci95"]
            lines.append(f"| {n} | {' | '.join(f'{v:.2f}' for v in rows[n]['diagonal'].values())} | "
                         f"{point[n]['learning_acc']:.3f} | [{lo:.3f}, {hi:.3f}] |")
    goals, gjson = [], {}
    if DEMO in with_diag:
        lowest = min(taught, key=lambda i: point[DEMO][f"diag.{i}"])
        low_draws = np.min(np.stack([draws[DEMO][f"diag.{i}"] for i in taught]), axis=0)
        gjson["min_diagonal"] = verdict(low_draws, point[DEMO][f"diag.{lowest}"],
                                        threshold=DEMO_GOALS["min_diagonal"], fmt="{:.3f}")
        goals.append(f"- every task ≥ {DEMO_GOALS['min_diagonal']} right after its own round (the lowest, "
                     f"{tasks[lowest]}): {gjson['min_diagonal']}")
        gjson["learning_acc"] = verdict(draws[DEMO]["learning_acc"], point[DEMO]["learning_acc"],
                                        threshold=DEMO_GOALS["learning_acc"], fmt="{:.3f}")
        goals.append(f"- their mean ≥ {DEMO_GOALS['learning_acc']}: {gjson['learning_acc']}")
    if DEMO in by and "sequential" in by:
        gjson["sequential_forgetting"] = verdict(draws["sequential"]["forgetting"],
                                                 point["sequential"]["forgetting"],
                                                 threshold=DEMO_GOALS["sequential_forgetting"], fmt="{:.3f}")
        goals.append(f"- sequential forgets ≥ {DEMO_GOALS['sequential_forgetting']}: "
                     f"{gjson['sequential_forgetting']}")
    return lines, goals, gjson


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stream", choices=sorted(STREAMS), default="clean",
                   help="the built-in stream: its base config, results in eval/results/<stream>/")
    p.add_argument("--config", type=Path, help="base config (default: the stream's, see STREAMS)")
    p.add_argument("--runs-dir", type=Path, help="run directories (default: runs/compare/<stream>)")
    p.add_argument("--strategies", default=DEFAULT_STRATEGIES, help=f"comma-separated, from {', '.join(STRATEGIES)}")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds")
    p.add_argument("--one-seed", default=ONE_SEED, help="strategies run on the first seed only")
    p.add_argument("--results", type=Path,
                   help="where runs/*.json and compare.md/.json/.html go (default: eval/results/<stream>)")
    p.add_argument("--commit", action="store_true", help="commit each result file as soon as it is written")
    p.add_argument("--assemble-only", action="store_true")
    p.add_argument("--background", action="store_true", help="detach; follow <runs-dir>/compare.log")
    p.add_argument("--status", action="store_true",
                   help="say which (strategy, seed) are done, stopped part way (resumable) or not started")
    p.add_argument("overrides", nargs="*", help="overrides applied to every run (key.sub=value)")
    args = p.parse_args(argv)
    default_config = STREAMS[args.stream]
    args.config = args.config or default_config
    args.runs_dir = args.runs_dir or ROOT / "runs" / "compare" / args.stream
    args.results = args.results or RESULTS / args.stream
    names = args.strategies.split(",")
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        p.error(f"unknown strategies {unknown}; known: {list(STRATEGIES)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    one = set(args.one_seed.split(","))
    plan = [(n, s) for s in seeds for n in names if s == seeds[0] or n not in one]  # seed 0 of everything first
    rel = args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config
    command = " ".join(["python eval/compare.py",
                        *([f"--stream {args.stream}"] if args.stream != "clean" else []),
                        *([f"--config {rel}"] if args.config != default_config else []),
                        *([f"--strategies {args.strategies}"] if args.strategies != DEFAULT_STRATEGIES else []),
                        *([f"--seeds {args.seeds}"] if args.seeds != "0,1,2" else []),
                        *([f"--one-seed {args.one_seed}"] if args.one_seed != ONE_SEED else []),
                        *[f"'{o}'" if "[" in o else o for o in args.overrides]])
    if args.status:
        print(status(args.config, args.runs_dir, plan, args.overrides, args.results))
        return 0
    if args.background:
        args.runs_dir.mkdir(parents=True, exist_ok=True)
        log = open(args.runs_dir / "compare.log", "a")
        rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--background"]
        proc = subprocess.Popen([sys.executable, __file__, *rest], stdout=log, stderr=subprocess.STDOUT,
                                cwd=ROOT, start_new_session=True)
        print(f"started in the background (pid {proc.pid}); log: {args.runs_dir / 'compare.log'}")
        return 0
    if not args.assemble_only:
        run_all(args.config, args.runs_dir, plan, args.overrides, args.results, args.commit)
    expected = {(n, s): config_sha(args.config, n, s, args.overrides) for n, s in plan}
    print(assemble(names, command, args.results, expected))
    return 0


if __name__ == "__main__":
    sys.exit(main())
