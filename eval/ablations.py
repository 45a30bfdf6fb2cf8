"""The ablations of Adapt-∞ on a stream: each component against its alternatives, paired seeds.

    python -m eval.ablations                    # every missing (row, seed), then ablations.md
    python -m eval.ablations --rows k4,k16 --seeds 0 --commit   # some rows, one seed, each result committed
    python -m eval.ablations --background --commit               # detached (log: <runs-dir>/ablations.log)
    python -m eval.ablations --status | --assemble-only
    python -m eval.ablations --validation       # the same rows answering the validation questions

The rows are ``ABLATIONS`` in eval/experiments.py: the reference row
(``ABLATION_BASE``, adapt_inf_prune: the base config with its pool cap) and one
row per alternative, each changing one thing, all at the same budget and cap.
They run through the comparison's runner (``eval.compare.run_all``: one
``lifelong run`` per (row, seed), resumable, a result file per run with its
config digest) into the stream's results folder, so the reference row's
results are the comparison's own. The table
(``<results>/ablations.md`` and ``.json``) comes from the result files alone:
per row its final average accuracy with a 95% interval, its difference from
the reference paired by seed and question (bootstrap over both), forgetting,
and the share of flagged defects it trained on.

A setting is chosen on the validation questions, never on test ones:
``--validation`` evaluates every run on the stream's validation split
(``VALIDATION`` in eval/experiments.py: ``stream.builtin_config.held_out=val``
on the clean stream, ``stream.builtin_config.messy.held_out=val`` on the messy
one) into runs and results folders of their own (``<stream>-val``); the test
table then reports what was chosen.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from eval.compare import (RESULTS, add_run_args, config_sha, detach, kernel, resolved_config, run_all, status,
                          table_kernel)
from eval.compare_table import (BOOTSTRAP, defects_trained, first_different_round, paired_difference, per_seed,
                               shown)
from eval.experiments import ABLATION_BASE, ABLATION_GROUPS, ABLATIONS, ROOT, STRATEGIES, STREAMS, VALIDATION

ROWS = [ABLATION_BASE, *ABLATIONS]
# uniform selection and uniform eviction at the same budget and cap: when its results are in the folder,
# every row is also compared with it (does the row, with its one change, still beat a uniform draw?)
UNIFORM = "random_prune"


def own(name: str) -> list[str]:
    """The overrides a row adds to the reference's."""
    return ABLATIONS[name][len(STRATEGIES[ABLATION_BASE]):]


def difference(draws: np.ndarray, point: float, seeds: list[int] | None = None,
               row_seeds: list[int] | None = None) -> str:
    """A row minus the reference: above / below (the 95% interval excludes 0) or within noise; computed
    on ``seeds``, named when they are not all the row's (``row_seeds``)."""
    from lifelong.evaluation.bootstrap import interval

    lo, hi = interval(draws)
    if lo != lo:
        return "—"
    word = "**above**" if lo > 0 else "**below**" if hi < 0 else "within noise"
    on = f" (on seeds {', '.join(map(str, seeds))})" if seeds is not None and seeds != row_seeds else ""
    return f"{shown(point)} [{shown(lo)}, {shown(hi)}] {word}{on}"


def paired(by: dict[str, list[dict]]) -> tuple[dict, dict, dict, dict]:
    """(row -> {metric: draws}, row -> {metric: point estimate}, row -> draws of its final avg acc minus the
    reference's on the same seeds, row -> (the seeds that difference is on, its point estimate, its value
    on each of them)).

    Rows run on the same seeds share their bootstrap draws (seed and question): one bootstrap per set of
    seeds. A row run on other seeds than the reference is compared on the seeds both have, both cut to
    them and bootstrapped again (``compare_table.paired_difference``, as the comparison's verdicts are);
    with none in common it has no difference.
    """
    from lifelong.evaluation.multiseed import point_estimates, seed_question_bootstrap

    by_seeds: dict[tuple, list[str]] = {}
    for n, rs in by.items():
        by_seeds.setdefault(tuple(r["seed"] for r in rs), []).append(n)
    draws = {}
    for names in by_seeds.values():
        draws.update(seed_question_bootstrap({n: by[n] for n in names}, n=BOOTSTRAP, seed=0))
    point, diffs, on = point_estimates(by), {}, {}
    for n in by if ABLATION_BASE in by else []:
        if n != ABLATION_BASE:
            d, p, each, _ = paired_difference(by, draws, point, n, ABLATION_BASE)
            if each:
                diffs[n], on[n] = d, (sorted(each), float(p), each)
    return draws, point, diffs, on


def drawn_apart(rows: list[dict], reference: list[dict]) -> dict[int, int | None]:
    """seed -> the first round whose selection differs from the reference's on that seed (0: none does;
    None: unknown, a result without per-round digests), for the seeds both have."""
    ref = {r["seed"]: r["costs"] for r in reference}
    return {r["seed"]: first_different_round(r["costs"], ref[r["seed"]]) for r in rows if r["seed"] in ref}


def apart(first: dict[int, int | None]) -> str:
    """``drawn_apart`` as a cell: "round 6" when every seed agrees, else per seed; "never": the same
    samples in every round."""
    def word(t):
        return "—" if t is None else "never" if t == 0 else f"round {t}"

    if not first or all(t is None for t in first.values()):
        return "—"
    if len(set(first.values())) == 1:
        return word(next(iter(first.values())))
    return ", ".join(f"s{s} {word(t)}" for s, t in sorted(first.items()))


def row_digests(config: Path, names: list[str], seeds: list[int], overrides: list[str],
                on: str | None = None) -> dict[tuple[str, int], str]:
    """(row, seed) -> ``config_sha`` of the rows ``names`` and the reference on ``seeds`` (on kernel ``on``,
    else this machine's)."""
    return {(n, s): config_sha(config, n, s, overrides, on) for s in seeds
            for n in dict.fromkeys([ABLATION_BASE, *names])}


def no_ops(digests: dict[tuple[str, int], str]) -> set[str]:
    """The rows of ``digests`` (``row_digests``) whose change the base config already has: on every seed
    their run config (its digest) is the reference's. Such a row is never run; its table line says so."""
    rows: dict[str, bool] = {}
    for (n, s), sha in digests.items():
        if n != ABLATION_BASE:
            rows[n] = rows.get(n, True) and sha == digests[(ABLATION_BASE, s)]
    return {n for n, same in rows.items() if same}


def assemble_ablations(command: str, results: Path, expected: dict[tuple[str, int], str],
                       same: set[str] = frozenset(), uniform: dict[tuple[str, int], str] | None = None) -> str:
    """ablations.md / ablations.json of a results folder, from its result files; ``same``: the rows
    the base config already has (``no_ops``); ``uniform``: (UNIFORM, seed) -> its digest, whose fresh
    results in the folder add a column of each row minus them."""
    from lifelong.evaluation.bootstrap import interval
    from lifelong.evaluation.multiseed import group, load_results

    expected = {k: v for k, v in expected.items() if k[0] not in same}
    wanted = {n for n, _ in expected}
    loaded = load_results(results / "runs")
    mine = [r for r in loaded if r["strategy"] in wanted]
    fresh = [r for r in mine if expected.get((r["strategy"], r["seed"])) == r["config_sha"]]
    stale = sorted(f"{r['strategy']} seed {r['seed']}" for r in mine
                   if r not in fresh and (r["strategy"], r["seed"]) in expected)
    missing = sorted(f"{n} seed {s}" for (n, s) in expected
                     if not any(r["strategy"] == n and r["seed"] == s for r in fresh))
    by = group(fresh)
    by = {n: by[n] for n in ROWS if n in by}
    yard = group([r for r in loaded if r["strategy"] == UNIFORM
                  and (uniform or {}).get((UNIFORM, r["seed"])) == r["config_sha"]]) if by else {}
    # one bootstrap for the rows and the yardstick together (same seeds, same draws)
    draws, point, diffs, on = paired({**by, **yard}) if by else ({}, {}, {}, {})
    vs_uniform = {}
    for n in by if yard else []:
        d, p_, each, _ = paired_difference({**by, **yard}, draws, point, n, UNIFORM)
        if each:
            vs_uniform[n] = (d, float(p_), sorted(each))
    rows: dict[str, dict] = {}
    for n, rs in by.items():
        shares = [v for v in (defects_trained(r["costs"]) for r in rs) if v is not None]
        rows[n] = {"seeds": [r["seed"] for r in rs], "overrides": ABLATIONS.get(n, []),
                   "avg_acc": point[n]["avg_acc"], "avg_acc_ci95": interval(draws[n]["avg_acc"]),
                   "forgetting": point[n]["forgetting"],
                   "minus_reference": on[n][1] if n in on else None,
                   "minus_reference_ci95": interval(diffs[n]) if n in on else None,
                   "minus_reference_seeds": on[n][0] if n in on else None,
                   "minus_reference_per_seed": on[n][2] if n in on else None,
                   **({f"minus_{UNIFORM}": vs_uniform[n][1], f"minus_{UNIFORM}_ci95": interval(vs_uniform[n][0]),
                       f"minus_{UNIFORM}_seeds": vs_uniform[n][2]} if n in vs_uniform else {}),
                   "defects_trained": float(np.mean(shares)) if shares else None,
                   "first_different_round": drawn_apart(rs, by.get(ABLATION_BASE, [])) if n != ABLATION_BASE else None,
                   "samples_trained": int(np.mean([r["costs"]["samples_trained"] for r in rs]))}

    def f(x, fmt="{:.3f}"):
        return "—" if x is None or not np.isfinite(x) else fmt.format(x)

    extra = " |" if yard else ""  # the column against UNIFORM

    def line(n: str, label: str) -> str:
        r = rows.get(n)
        if n in same:
            return f"| {label} | — | the base config already has it: the reference row | | | | | | | |{extra}"
        if r is None:
            return f"| {label} | — | not run yet | | | | | | | |{extra}"
        lo, hi = r["avg_acc_ci95"]
        vs = difference(diffs[n], r["minus_reference"], on[n][0], r["seeds"]) if n in on else "(reference)" \
            if n == ABLATION_BASE else "—"
        each = per_seed(r["minus_reference_per_seed"]) or "—"
        each += " | " + ("—" if n == ABLATION_BASE else apart(r["first_different_round"]))
        if yard:
            u = vs_uniform.get(n)
            each += " | " + ("—" if u is None else difference(*u, r["seeds"]))
        return (f"| {label} | {', '.join(map(str, r['seeds']))} | {f(r['avg_acc'])} | [{lo:.3f}, {hi:.3f}] | {vs} | "
                f"{each} | {f(r['forgetting'])} | {f(r['defects_trained'])} | {r['samples_trained']} |")

    body = []
    for title, (reference, names) in ABLATION_GROUPS.items():
        names = [n for n in names if n in wanted or n in same]  # rows not asked for are left out
        if not names:
            continue
        body += ["", f"## {title}", "",
                 f"| row | seeds | final avg acc | 95% CI | − {ABLATION_BASE} (paired) | per seed | drawn differently "
                 "from | " + (f"− {UNIFORM} (paired) | " if yard else "") + "forgetting | defects trained | samples trained |",
                 "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if yard else ""),
                 line(ABLATION_BASE, f"{ABLATION_BASE}: {reference}"),
                 *(line(n, f"{n}: `{' '.join(own(n))}`") for n in names)]
    md = "\n".join([
        "# Ablations of Adapt-∞", "", f"Command: `{command}`", "",
        f"Every row is {ABLATION_BASE} (the base config, its pool cap and budget) with one change, so all train "
        "on the same budget under the same cap. Differences are a row's final average accuracy minus the "
        f"reference's on the seeds both were run on, with a 95% interval from a bootstrap over seeds and held-out questions "
        f"together ({BOOTSTRAP} resamples): **above** / **below** when the interval excludes 0; per seed: the same "
        "difference on each seed, so a mean that rests on one seed shows. Drawn differently from: the first "
        "round whose selected samples differ from the reference's on the same seed (a change that acts only "
        "once the pool passes its cap cannot differ earlier; — where a result predates per-round digests). "
        "Defects trained "
        "= share of flagged samples among everything trained on (from each round's composition)."
        + (f" − {UNIFORM}: the same difference against {UNIFORM} (uniform selection and uniform eviction at the "
           f"same budget and cap, seeds {', '.join(map(str, (r['seed'] for r in yard[UNIFORM])))} in this folder): "
           "whether the row, with its change, still beats a uniform draw." if yard else ""),
        *body,
        *(["", f"Not run yet: {', '.join(missing)}"] if missing else []),
        *(["", "Left out: the rows this command did not ask for (`--rows`); their results are kept."]
          if set(ROWS) - wanted - set(same) - {ABLATION_BASE} else []),
        *(["", "Ignored (run under another config, or before a change of the method): " + ", ".join(stale)]
          if stale else []),
    ]) + "\n"
    results.mkdir(parents=True, exist_ok=True)
    (results / "ablations.md").write_text(md)
    (results / "ablations.json").write_text(json.dumps(
        {"command": command, "reference": ABLATION_BASE, "bootstrap": BOOTSTRAP, "rows": rows,
         "missing": missing, "stale": stale, "in_base_config": sorted(same)}, indent=1))
    return md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(p, "messy", "ablations.log")
    p.add_argument("--rows", default=",".join(ROWS),
                   help=f"comma-separated, from {', '.join(ROWS)} (the reference, {ABLATION_BASE}, always: a row is "
                        "compared with it on each seed)")
    p.add_argument("--validation", action="store_true",
                   help="evaluate on the validation questions (runs and results in <stream>-val folders)")
    args = p.parse_args(argv)
    config = args.config or STREAMS[args.stream]
    folder = f"{args.stream}-val" if args.validation else args.stream
    runs_dir = args.runs_dir or ROOT / "runs" / "compare" / folder
    results = args.results or RESULTS / folder
    if args.validation:
        args.overrides = [*args.overrides, VALIDATION[args.stream]]
    names = args.rows.split(",")
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        p.error(f"unknown rows {unknown}; known: {ROWS}")
    seeds = [int(s) for s in args.seeds.split(",")]
    args.results = results
    on = table_kernel(p, args, ROWS, kernel(resolved_config(config, ABLATION_BASE, seeds[0], args.overrides)))
    digests = row_digests(config, names, seeds, args.overrides, on)
    same = no_ops(digests)
    # seed 0 of every row first, each seed's reference before its rows: a row is never run without its pair
    # (the reference runs only where its result is missing)
    plan = [(n, s) for s in seeds for n in dict.fromkeys([ABLATION_BASE, *names]) if n not in same]
    if args.status:
        print(status(config, runs_dir, plan, args.overrides, results, on))
        return 0
    if args.background:
        return detach("eval.ablations", argv, runs_dir / "ablations.log")
    if not args.assemble_only:
        run_all(config, runs_dir, plan, args.overrides, results, args.commit)
    command = " ".join(["python -m eval.ablations", *(argv if argv is not None else sys.argv[1:])])
    expected = {k: digests[k] for k in plan}
    uniform = {(UNIFORM, s): config_sha(config, UNIFORM, s, args.overrides, on) for s in seeds}
    print(assemble_ablations(command, results, expected, same, uniform))
    return 0


if __name__ == "__main__":
    sys.exit(main())
