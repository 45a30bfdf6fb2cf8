"""Adapt-∞ against the baselines on one stream, over seeds, with the cost of selection.

    python -m eval.compare                      # every missing (strategy, seed) on the clean stream, then the table
    python -m eval.compare --stream messy       # the same on the messy stream (configs/messy.yaml)
    python -m eval.compare --commit             # ... committing each result file the moment it is written
    python -m eval.compare --background --commit   # the same, detached (log: <runs-dir>/compare.log)
    python -m eval.compare --assemble-only      # only the table, from the result files
    python -m eval.compare --status             # done / stopped part way / not started; CPU-hours left
    python -m eval.compare --config configs/smoke.yaml --runs-dir /tmp/cmp --results /tmp/cmp   # a quick check

A stream is a base config (``STREAMS``) and a results folder, ``eval/results/<stream>/``.
Each (strategy, seed) is a run of the same loop (`lifelong run ... seed=S`) that
differs only in the overrides below, resumable on its own. When it finishes,
its per-question scores, cost figures and what each round chose (per dataset,
task, defect kind and cluster: ``rounds/<t>/report/composition.json``) go to
``<results>/runs/<strategy>_s<seed>.json`` (with a digest of its config, of
the built-in stream's data and of the kernel it ran on: the base's dtype and
the CPU's family and model, so results of different kernels are never
paired: a table's digests are those of the kernel its folder's results ran
on, so it assembles the same on any machine, and running into a folder of
another kernel's results is refused); a
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

from eval.compare_table import assemble
from eval.experiments import (ABLATION_BASE, ABLATIONS, ADDED_KEYS, DEFAULT_STRATEGIES,  # noqa: F401
                              METHOD_CHANGES, ONE_SEED, ROOT, STRATEGIES, STREAMS)
from lifelong.layout import RunLayout, read_json
from lifelong.machine import CpuUse, describe_machine, use_line

RESULTS = ROOT / "eval" / "results"


def run_dir(runs_dir: Path, name: str, seed: int) -> Path:
    return runs_dir / f"cmp_{name}_s{seed}"


def run_overrides(name: str, seed: int, extra: list[str]) -> list[str]:
    """A strategy's or an ablation's overrides (eval/experiments.py) for one seed."""
    return [*(STRATEGIES[name] if name in STRATEGIES else ABLATIONS[name]), f"seed={seed}", *extra]


_STREAMS: dict[str, str] = {}  # built-in stream settings -> digest of its data


def resolved_config(config: Path, name: str, seed: int, extra: list[str]):
    """The run config of one (strategy, seed), less where it lives (name and runs_dir are placeholders)."""
    from lifelong.run_config import load_run_config

    return load_run_config(config, run_overrides(name, seed, extra) + ["name=x", "runs_dir=x"])


def kernel(cfg) -> str:
    """What the numbers' kernels depend on: the base's dtype here (run config ``cfg``) and the CPU's
    family and model."""
    m = describe_machine()
    return f"{base_dtype(cfg)} on {m.get('cpu_generation') or m.get('cpu')}"


def result_kernel(res: dict) -> str | None:
    """The kernel a result file ran on (:func:`kernel` there), from the dtype and machine it records;
    None for a result from before it recorded them."""
    m = res.get("machine") or {}
    return f"{res['dtype']} on {m.get('cpu_generation') or m.get('cpu')}" if res.get("dtype") and m else None


def folder_kernels(results: Path, names) -> dict[str, int]:
    """kernel -> how many result files of ``names`` in ``results/runs`` ran on it."""
    from lifelong.evaluation.multiseed import load_results

    out: dict[str, int] = {}
    for r in load_results(results / "runs") if (results / "runs").is_dir() else []:
        k = result_kernel(r) if r["strategy"] in names else None
        if k:
            out[k] = out.get(k, 0) + 1
    return out


def table_kernel(p: argparse.ArgumentParser, args, names: list[str], mine: str) -> str:
    """The kernel a table's digests are computed for: the one most of the folder's results ran on
    (``mine``, this machine's, when there are none), so a table assembles the same on any machine.
    Running here into a folder that holds results of another kernel is refused: they could not be
    paired with what runs here, and each run would replace one of them."""
    found = folder_kernels(args.results, names)
    if not found:
        return mine
    others = sorted(k for k in found if k != mine)
    if others and args.status:
        print(f"{args.results} holds results run in {', '.join(f'{k} ({found[k]})' for k in sorted(found))}; "
              f"this machine runs {mine}, so it cannot add to them (it can run into a folder of its own)")
    if others and not (args.assemble_only or args.status):
        p.error(f"{args.results} holds results run in {', '.join(others)}; this machine runs {mine}. Results "
                "of different kernels are never paired, and running here would replace them: run into a "
                f"folder of this kernel's own (--results {args.results}-{mine.split()[0]} --runs-dir <another>), "
                "or only assemble this one (--assemble-only)")
    return max(found, key=lambda k: (found[k], k == mine, k))


def config_sha(config: Path, name: str, seed: int, extra: list[str], on: str | None = None) -> str:
    """Digest (12 hex) of the resolved run config, less where it lives, of the
    built-in stream's data, of the kernel (``on``, else this machine's:
    :func:`kernel`) and of the ``METHOD_CHANGES`` that affect the strategy:
    equal digests = the same experiment. A change to the stream's generators
    changes the data, not the config, so it counts too; a run in bf16 and one in
    fp32, or on another CPU generation, answer differently for the same seed, so
    they are not paired."""
    from lifelong.data.stream import stream_digest

    cfg = resolved_config(config, name, seed, extra)
    h = hashlib.sha256(digest_dump(cfg).encode())
    s = cfg.stream
    if s.builtin != "none":
        key = json.dumps([s.builtin, s.seed, repr(s.builtin_config)])
        if key not in _STREAMS:
            _STREAMS[key] = stream_digest(s.builtin, s.seed, s.builtin_config)
        h.update(_STREAMS[key].encode())
    h.update((on or kernel(cfg)).encode())
    for change, affected in METHOD_CHANGES.items():
        if name in affected or (name in ABLATIONS and ABLATION_BASE in affected):
            h.update(change.encode())
    return h.hexdigest()[:12]


def digest_dump(cfg) -> str:
    """The resolved config as the digest reads it: its dump less what the run's strategy never
    reads (``Strategy.unread``: a setting of Adapt-inf's clustering cannot change a random run, so
    changing it leaves random's results fresh) and less each of ``ADDED_KEYS`` that holds the value
    runs had before the key existed (so their results stay fresh)."""
    import yaml

    from lifelong.config import to_dict
    from lifelong.selection.strategies import get_strategy

    d = to_dict(cfg)

    def parent(key: str):
        *path, leaf = key.split(".")
        node = d
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        return (node, leaf) if isinstance(node, dict) and leaf in node else (None, leaf)

    for key in get_strategy(cfg.select.strategy).unread(cfg):
        node, leaf = parent(key)
        if node is not None:
            del node[leaf]
    for key, before in ADDED_KEYS.items():
        node, leaf = parent(key)
        if node is not None and node[leaf] == before:
            del node[leaf]
    return yaml.safe_dump(d, sort_keys=False)


def base_dtype(cfg) -> str:
    """The dtype the frozen base of run config ``cfg`` takes on this machine (``model.dtype: auto`` resolved)."""
    from lifelong.machine import resolve_dtype

    return resolve_dtype(cfg.model.dtype, cfg.model.device)


def selection_digest(chosen: list[tuple[int, list]]) -> str:
    """sha256 (12 hex) of (round, selected ids) pairs in round order: equal digests = equal selections
    (of every round: ``selections_sha256``; of one round: its ``selection_sha256``)."""
    h = hashlib.sha256()
    for t, ids in chosen:
        h.update(json.dumps([t, ids]).encode())
    return h.hexdigest()[:12]


def costs(d: Path) -> dict:
    """Samples trained/scored and selection/training seconds of a finished run."""
    from lifelong.evaluation.history import load_history

    rounds = load_history(d).rounds
    sel_s = [r.stage_seconds.get("score", 0.0) + r.stage_seconds.get("select", 0.0) for r in rounds]
    train_s = [r.stage_seconds.get("train", 0.0) for r in rounds]
    layout, ts = RunLayout(d), range(1, len(rounds) + 1)
    scored = [int(layout.stage_info(t, "score").get("n") or 0) for t in ts]
    new = [layout.stage_info(t, "select").get("new_selected") for t in ts]
    # (round, the ids it selected), each selection file read once for both digests
    chosen = [(t, (read_json(layout.selection(t)) or {}).get("ids", [])) for t in ts]
    return {
        "samples_trained": int(sum(r.selected for r in rounds)), "samples_scored": int(sum(scored)),
        "selection_s": float(sum(sel_s)), "train_s": float(sum(train_s)), "rounds": len(rounds),
        "final_pool": rounds[-1].pool_size if rounds else None,
        "per_round": [{"round": t, "pool": r.pool_size, "selected": r.selected, "new_selected": k, "scored": n,
                       "selection_s": round(s, 2), "train_s": round(r.stage_seconds.get("train", 0.0), 2),
                       "selection_sha256": selection_digest([chosen[t - 1]])}
                      for t, (r, n, k, s) in enumerate(zip(rounds, scored, new, sel_s), start=1)],
        "selections_sha256": selection_digest(chosen),
        # What each round chose, kept for good (the run directory is not): rounds/<t>/report/composition.json.
        "composition": [read_json(layout.composition(t)) for t in ts],
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
                                                   "dtype": base_dtype(resolved_config(config, name, seed, extra)),
                                                   "cpu_use": sitting})
        print(f"[{name} seed {seed}] {use_line(res['cpu_use'])}", flush=True)
        save_result(res, results / "runs")
        if do_commit:
            commit(path)


def status(config: Path, runs_dir: Path, plan: list[tuple[str, int]], extra: list[str], results: Path,
           on: str | None = None) -> str:
    """Where each planned (strategy, seed) stands: its result (on kernel ``on``, else this machine's), a run
    stopped part way (the next ``compare.py`` resumes it at the round where it stopped), or nothing yet."""
    from lifelong.evaluation.multiseed import load_results, metrics_of, result_path, score_tensor
    from lifelong.runlock import running

    lines, todo, paces = [], [], {}
    found = {(r["strategy"], r["seed"]): r for r in
             (load_results(results / "runs") if (results / "runs").is_dir() else [])}
    for r in found.values():
        if (r.get("cpu_use") or {}).get("cpu_s") and (on is None or result_kernel(r) == on):
            paces.setdefault(r["strategy"], []).append(r["cpu_use"]["cpu_s"])
    for name, seed in plan:
        path = result_path(results / "runs", name, seed)
        d = run_dir(runs_dir, name, seed)
        if (name, seed) in found:
            res = found[name, seed]
            if res.get("config_sha") == config_sha(config, name, seed, extra, on):
                final = metrics_of(score_tensor(res), res.get("learned"))["avg_acc"]  # as the table computes it
                lines.append(f"{name} seed {seed}: done ({path.relative_to(results)}, final avg acc {final:.3f})")
                continue
            stale = " (its result there is stale: another config, stream or method change)"
        else:
            stale = ""
        todo.append(name)
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
    # a row of the ablations runs at its reference's pace until one of its own has run
    pace = [paces.get(n) or (paces.get(ABLATION_BASE) if n in ABLATIONS else None) for n in todo]
    unknown = sorted({n for n, p in zip(todo, pace) if not p})
    cost = sum(sum(p) / len(p) for p in pace if p) / 3600
    at = "at the pace of this folder's results" + (f" ({on})" if on else "")
    return "\n".join([*lines, f"{len(todo)} of {len(plan)} still to run" + (
        "" if not todo else f"; no pace to estimate their cost: none of {', '.join(unknown)} has run here"
        if len(unknown) == len(set(todo)) else (f"; about {cost:.1f}" if cost >= 0.05 else "; under 0.1")
        + f" CPU-hours {at}"
        + (f", not counting {', '.join(unknown)} (none run here yet)" if unknown else ""))])


def add_run_args(p: argparse.ArgumentParser, stream: str, log: str) -> None:
    """The options every table of runs has (this comparison, ``eval/ablations.py``): where the runs and
    results go, which seeds, and how to run (committing, detached, only assembling, only the status)."""
    p.add_argument("--stream", choices=sorted(STREAMS), default=stream,
                   help="the built-in stream: its base config, results in eval/results/<stream>/")
    p.add_argument("--config", type=Path, help="base config (default: the stream's, see STREAMS)")
    p.add_argument("--runs-dir", type=Path, help="run directories (default: runs/compare/<stream>)")
    p.add_argument("--results", type=Path,
                   help="where runs/*.json and the tables go (default: eval/results/<stream>)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds")
    p.add_argument("--commit", action="store_true", help="commit each result file as soon as it is written")
    p.add_argument("--assemble-only", action="store_true", help="only the tables, from the result files")
    p.add_argument("--background", action="store_true", help=f"detach; follow <runs-dir>/{log}")
    p.add_argument("--status", action="store_true",
                   help="say which runs are done, stopped part way (resumable) or not started, and about how "
                        "many CPU-hours the rest takes at the pace of the folder's results")
    p.add_argument("overrides", nargs="*", help="overrides applied to every run (key.sub=value)")


def detach(module: str, argv: list[str] | None, log: Path) -> int:
    """Run ``python -m module`` with the same arguments less ``--background`` in a session of its own."""
    log.parent.mkdir(parents=True, exist_ok=True)
    rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--background"]
    proc = subprocess.Popen([sys.executable, "-m", module, *rest], stdout=open(log, "a"), stderr=subprocess.STDOUT,
                            cwd=ROOT, start_new_session=True)
    print(f"started in the background (pid {proc.pid}); log: {log}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(p, "clean", "compare.log")
    p.add_argument("--strategies", default=DEFAULT_STRATEGIES, help=f"comma-separated, from {', '.join(STRATEGIES)}")
    p.add_argument("--one-seed", default=ONE_SEED, help="strategies run on the first seed only")
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
    results = args.results.resolve().relative_to(ROOT) if args.results.resolve().is_relative_to(ROOT) else args.results
    command = " ".join(["python -m eval.compare",
                        *([f"--stream {args.stream}"] if args.stream != "clean" else []),
                        *([f"--config {rel}"] if args.config != default_config else []),
                        *([f"--results {results}"] if results != RESULTS.relative_to(ROOT) / args.stream else []),
                        *([f"--strategies {args.strategies}"] if args.strategies != DEFAULT_STRATEGIES else []),
                        *([f"--seeds {args.seeds}"] if args.seeds != "0,1,2" else []),
                        *([f"--one-seed {args.one_seed}"] if args.one_seed != ONE_SEED else []),
                        *[f"'{o}'" if "[" in o else o for o in args.overrides]])
    on = table_kernel(p, args, names, kernel(resolved_config(args.config, names[0], seeds[0], args.overrides)))
    if args.status:
        print(status(args.config, args.runs_dir, plan, args.overrides, args.results, on))
        return 0
    if args.background:
        return detach("eval.compare", argv, args.runs_dir / "compare.log")
    if not args.assemble_only:
        run_all(args.config, args.runs_dir, plan, args.overrides, args.results, args.commit)
    expected = {(n, s): config_sha(args.config, n, s, args.overrides, on) for n, s in plan}
    # The demo's learning goals are about the stream `make demo` runs (the clean one's base config).
    on_demo = Path(args.config).resolve() == STREAMS["clean"].resolve()
    print(assemble(names, command, args.results, expected, demo_goals=on_demo))
    return 0


if __name__ == "__main__":
    sys.exit(main())
