"""The comparison's table, from the result files alone: means over seeds, intervals, verdicts, the gate.

``assemble`` writes ``compare.md`` / ``compare.json`` / ``compare.html`` of a
results folder; nothing here runs a model or needs a run directory.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from eval.experiments import DEMO, DEMO_GOALS, GATE, LEVEL
from lifelong.evaluation.metrics import headline
from lifelong.machine import SHARED_BELOW, describe_machine, machine_line, shared

BOOTSTRAP = 1000


def sitting_rounds(use: dict) -> str:
    """The rounds a result's CPU share covers, in words."""
    first, last = use["first_round"], use["last_round"]
    return f"rounds {first}–{last}" if first <= last else "no round: all finished in an earlier sitting"


def defects_trained(costs: dict) -> float | None:
    """Share of flagged defects among every sample the run trained on (all rounds); None when its
    result predates the rounds' composition records."""
    comps = [c for c in costs.get("composition") or [] if c]
    n = sum(c["selected"] for c in comps)
    if not comps or not n:
        return None
    return sum(c["selected"] * c["defects"]["selected"].get("any", 0.0) for c in comps) / n


def first_different_round(a: dict, b: dict) -> int | None:
    """The first round whose selection differs between two runs (their costs' per-round
    ``selection_sha256``): 0 when every round drew the same samples, None when a result predates the
    per-round digests or the two ran a different number of rounds."""
    da, db = ([r.get("selection_sha256") for r in c.get("per_round") or []] for c in (a, b))
    if not da or len(da) != len(db) or None in da or None in db:
        return None
    return next((t for t, (x, y) in enumerate(zip(da, db), start=1) if x != y), 0)


def shown(x: float, fmt: str = "{:+.3f}") -> str:
    """``x`` as ``fmt`` writes it, never as a negative zero: "-0.000" would read as a loss that the
    rounding hid, so a difference that rounds to nothing is written "+0.000" (or "0.000")."""
    s = fmt.format(x)
    if s.startswith("-") and float(s) == 0:
        s = ("+" if "{:+" in fmt else "") + s[1:]
    return s


def gate_outcome(entry: dict) -> str:
    """``**passed**`` or not, with the difference and the margin, of a gate entry of compare.json (the
    table and the README summary both say it this way; the closing parenthesis is theirs)."""
    return (f"{'**passed**' if entry['passed'] else '**not passed**'} (difference {shown(entry['difference'])}, "
            f"needs ≥ {entry['threshold']:.2f}")


def seed_differences(by: dict[str, list[dict]], a: str, b: str, key: str = "avg_acc") -> dict[int, float]:
    """seed -> ``key`` of ``a``'s result minus that of ``b``'s, on every seed both were run on: a mean
    over seeds that rests on one seed shows here."""
    from lifelong.evaluation.multiseed import point_estimates

    theirs = {r["seed"]: r for r in by.get(b, [])}
    out = {}
    for r in by.get(a, []):
        if r["seed"] in theirs:
            p = point_estimates({a: [r], b: [theirs[r["seed"]]]})
            out[r["seed"]] = p[a][key] - p[b][key]
    return out


def per_seed(diffs: dict[int, float] | None, fmt: str = "{:+.3f}") -> str:
    """``s0 +0.029, s1 -0.323``: a difference on each seed ('' when there is none to show)."""
    return ", ".join(f"s{s} {shown(v, fmt)}" for s, v in sorted((diffs or {}).items()))


def paired_difference(by: dict[str, list[dict]] | None, draws: dict, point: dict, a: str, b: str,
                      key: str = "avg_acc") -> tuple[np.ndarray, float, dict[int, float], str]:
    """``a`` minus ``b`` in ``key``: (bootstrap draws, point estimate, per seed, a note). Both on the seeds
    they share: when their seeds differ (``by``, the results per strategy) both are cut to the shared
    seeds and bootstrapped again, and the note names them; a mean over other seeds would not be paired."""
    from lifelong.evaluation.multiseed import point_estimates, seed_question_bootstrap

    each = seed_differences(by or {}, a, b, key)
    if not by or [r["seed"] for r in by[a]] == [r["seed"] for r in by[b]]:
        return draws[a][key] - draws[b][key], point[a][key] - point[b][key], each, ""
    if not each:
        return np.full(1, np.nan), float("nan"), each, ""
    cut = {n: [r for r in by[n] if r["seed"] in each] for n in (a, b)}
    d, p = seed_question_bootstrap(cut, n=BOOTSTRAP, seed=0), point_estimates(cut)
    return d[a][key] - d[b][key], p[a][key] - p[b][key], each, f" (on seeds {', '.join(map(str, sorted(each)))})"


def gate(draws: dict, point: dict, by: dict[str, list[dict]] | None = None) -> tuple[dict, list[str]]:
    """The stream's gate (oracle − random ≥ ``GATE`` with its interval above 0) and Adapt-∞'s targets
    against its uniform counterparts, as verdicts for the json and lines for the table (with ``by``, the
    results per strategy, each difference also on each seed, and on the seeds both share)."""
    out, lines = {}, []

    def diff(a, b, key="avg_acc"):
        return paired_difference(by, draws, point, a, b, key)

    if "oracle" in draws and "random" in draws:
        d, p, s, note = diff("oracle", "random")
        above = verdict(d, p, seeds=s) + note
        out["oracle_above_random"] = {"verdict": above, "difference": p, "threshold": GATE,
                                      "passed": bool(p >= GATE and above.startswith("**met**"))}
        lines.append(f"- gate: final avg acc of oracle − that of random ≥ {GATE} with its interval above 0: "
                     f"{gate_outcome(out['oracle_above_random'])}; interval above 0: {above})")
    for a, b in (("adapt_inf_prune", "random_prune"), ("adapt_inf", "random")):
        if a in draws and b in draws:
            d, p, s, note = diff(a, b)
            out[f"{a}_above_{b}"] = verdict(d, p, seeds=s) + note
            lines.append(f"- final avg acc of {a} − that of {b} (same budget{' and cap' if 'prune' in a else ''}):"
                         f" {out[f'{a}_above_{b}']}")
            d, p, s, note = diff(b, a, "forgetting")
            out[f"{a}_forgets_less_than_{b}"] = verdict(d, p, seeds=s) + note
            lines.append(f"- forgetting of {b} − forgetting of {a}: {out[f'{a}_forgets_less_than_{b}']}")
    if "adapt_inf_prune" in draws and "random" in draws:
        # Where selection has little to find (the clean stream), the capped method should at least not
        # fall behind an uncapped uniform draw: its difference's interval above -LEVEL.
        d, p, s, note = diff("adapt_inf_prune", "random")
        out["adapt_inf_prune_level_with_random"] = verdict(d, p, threshold=-LEVEL, seeds=s) + note
        lines.append(f"- final avg acc of adapt_inf_prune − that of random (uncapped) > −{LEVEL}: "
                     f"{out['adapt_inf_prune_level_with_random']}")
    return out, lines


def verdict(draws: np.ndarray, point: float, threshold: float = 0.0, fmt: str = "{:+.3f}",
            seeds: dict[int, float] | None = None) -> str:
    """met (interval above the threshold) / not met (below) / within noise; ``seeds``: the
    difference on each seed (``seed_differences``), shown when there are several."""
    from lifelong.evaluation.bootstrap import interval

    lo, hi = interval(draws)
    if lo != lo:
        return "—"
    ci = f"{shown(point, fmt)}, 95% CI [{shown(lo, fmt)}, {shown(hi, fmt)}]"
    if seeds and len(seeds) > 1:
        ci += f"; per seed {per_seed(seeds, fmt)}"
    if lo > threshold:
        return f"**met** ({ci})"
    if hi < threshold:
        return f"**not met** ({ci})"
    return f"within noise ({ci})"


def assemble(names: list[str], command: str, results: Path, expected: dict[tuple[str, int], str],
             demo_goals: bool = True) -> str:
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

    shown = headline()  # the registry's headline CL metrics, each with its interval where it asks for one
    with_ci = [m.name for m in shown if m.interval]
    heads = [h for m in shown for h in ([m.short, "95% CI"] if m.interval else [m.short])]
    heads += ["pooled acc", "rel. gain vs multitask (%)", "samples trained", "defects trained", "selection s/round",
              "training s/round", "selection / training"]
    rows, lines = {}, ["| strategy | seeds | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]
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
                   **{f"{k}_ci95": interval(dr[k]) for k in [*with_ci, "pooled_acc"]},
                   "relative_gain": rg, "relative_gain_ci95": interval(rg_draws) if rg_draws is not None else None,
                   "samples_trained": int(np.mean([x["samples_trained"] for x in c])),
                   "samples_scored": int(np.mean([x["samples_scored"] for x in c])),
                   "defects_trained": float(np.mean(shares)) if shares else None,
                   "selection_s_per_round": sel, "train_s_per_round": trn, "selection_over_training": ratio,
                   "selections_sha256": {str(r["seed"]): r["costs"]["selections_sha256"] for r in rs},
                   "per_seed": {str(r["seed"]): r["costs"] for r in rs}}
        cells = [cell for m in shown for cell in ([f(p[m.name]), ci(dr[m.name])] if m.interval else [f(p[m.name])])]
        lines.append(f"| {n} | {', '.join(map(str, rows[n]['seeds']))} | {' | '.join(cells)} | "
                     f"{f(p['pooled_acc'])} | {f(rg, '{:.1f}')} | {rows[n]['samples_trained']} | "
                     f"{f(rows[n]['defects_trained'], '{:.3f}')} | {sel:.1f} | "
                     f"{trn:.1f} | {f(ratio, '{:.2f}')} |")
    targets, tjson = [], {}
    if "adapt_inf" in by:
        a = "adapt_inf"
        if "sequential" in by:
            d, p, each, note = paired_difference(by, draws, point, "sequential", a, "forgetting")
            tjson["forgetting_below_sequential"] = verdict(d, p, seeds=each) + note
            targets.append(f"- forgetting of sequential − forgetting of adapt_inf > 0: "
                           f"{tjson['forgetting_below_sequential']}")
        if "random" in by:
            d, p, each, note = paired_difference(by, draws, point, a, "random")
            tjson["avg_acc_above_random"] = verdict(d, p, seeds=each) + note
            targets.append(f"- final avg acc of adapt_inf − that of random at the same budget > 0: "
                           f"{tjson['avg_acc_above_random']}")
        if ref and rows[a]["relative_gain"] is not None:
            with np.errstate(all="ignore"):
                g = 100 * draws[a]["pooled_acc"] / draws[ref]["pooled_acc"]
            tjson["at_least_95pct_of_multitask"] = verdict(g, rows[a]["relative_gain"], threshold=95.0, fmt="{:.1f}")
            targets.append(f"- adapt_inf's pooled accuracy ≥ 95% of multitask's: {tjson['at_least_95pct_of_multitask']}")
    gjson_gate, gate_lines = gate(draws, point, by) if by else ({}, [])
    first = next(iter(by.values()))[0] if by else None
    q_per_task = {t: len(q) for t, q in first["questions"].items()} if first else {}
    tasks = first["tasks"] if first else []
    diag_lines, goals, gjson = diagonal_section(by, point, draws, tasks, rows, demo_goals)
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
                                              "seeds (compare.md has the means over seeds with intervals)",
                                        written=False))
    return md


def diagonal_section(by: dict, point: dict, draws: dict, tasks: list[str], rows: dict, demo_goals: bool = True
                     ) -> tuple[list[str], list[str], dict]:
    """The table of each task right after its own round (means over seeds), and the demo's learning goals
    (``demo_goals``: only on the demo's own stream, whose config `make demo` runs).

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
    if not demo_goals:
        return lines, goals, gjson
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
