"""eval/compare.py: results per (strategy, seed) accumulate, the table comes from them alone, reruns reproduce."""
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lifelong.machine import describe_machine, machine_line

pytestmark = pytest.mark.e2e  # a whole run of the loop: in the default suite (-m 'not e2e' leaves it out)

ROOT = Path(__file__).resolve().parents[2]
SHORT = ["stream.builtin_config.order=[vqa_shape,digits]", "score.shard_size=16", "eval.max_samples_per_task=4"]


def _load_compare():
    from eval import compare

    return compare


def _compare(runs: Path, capsys, *extra: str) -> tuple[dict, str]:
    """eval/compare.py's main in this process (each run is still its own ``lifelong run`` process)."""
    argv = ["--config", str(ROOT / "configs" / "smoke.yaml"), "--runs-dir", str(runs), "--results", str(runs),
            "--strategies", "sequential,adapt_inf", "--seeds", "0,1", "--one-seed", "sequential", *extra, *SHORT]
    capsys.readouterr()
    assert _load_compare().main(argv) == 0
    return json.loads((runs / "compare.json").read_text()), capsys.readouterr().out


@pytest.mark.slow  # three strategies x two seeds of real runs (~40 s): CI's slow set
def test_results_per_seed_accumulate_and_the_table_comes_from_them(tmp_path, capsys):
    out, _ = _compare(tmp_path, capsys)
    assert out["seeds"] == {"sequential": [0], "adapt_inf": [0, 1]}  # --one-seed sequential
    assert out["questions_per_task"] == {"vqa_shape": 4, "digits": 4}
    files = sorted(p.name for p in (tmp_path / "runs").glob("*.json"))
    assert files == ["adapt_inf_s0.json", "adapt_inf_s1.json", "sequential_s0.json"]
    # Point estimates are the means over seeds of each run's own matrix.
    accs = []
    for seed in (0, 1):
        h = json.loads((tmp_path / f"cmp_adapt_inf_s{seed}/metrics/history.json").read_text())
        accs.append(np.mean(h["accuracy"][-1]))
    assert abs(out["runs"]["adapt_inf"]["avg_acc"] - np.mean(accs)) < 1e-9
    lo, hi = out["runs"]["adapt_inf"]["avg_acc_ci95"]
    assert lo <= out["runs"]["adapt_inf"]["avg_acc"] <= hi
    # The diagonal (each task right after its own round), mean over seeds, from the runs' own matrices.
    diag = [np.mean([json.loads((tmp_path / f"cmp_adapt_inf_s{s}/metrics/history.json").read_text())
                     ["accuracy"][i + 1][i] for s in (0, 1)]) for i in range(2)]
    assert list(out["runs"]["adapt_inf"]["diagonal"].values()) == pytest.approx(diag)
    assert out["runs"]["adapt_inf"]["learning_acc"] == pytest.approx(np.mean(diag))
    # Two seeds are two different runs; 50% of a pool of 40, then 80.
    sha = out["runs"]["adapt_inf"]["selections_sha256"]
    assert sha["0"] != sha["1"]
    assert [r["selected"] for r in out["runs"]["adapt_inf"]["per_seed"]["0"]["per_round"]] == [20, 40]
    # ... and each round's selection has its digest: sha256 of [round, the ids it selected]
    for t in (1, 2):
        ids = json.loads((tmp_path / f"cmp_adapt_inf_s0/rounds/{t}/select/selection.json").read_text())["ids"]
        assert len(ids) == 20 * t and json.loads((tmp_path / "runs" / "adapt_inf_s0.json").read_text())[
            "costs"]["per_round"][t - 1]["selection_sha256"] == hashlib.sha256(json.dumps([t, ids]).encode()).hexdigest()[:12]
    assert out["runs"]["sequential"]["samples_scored"] == 0
    md = (tmp_path / "compare.md").read_text()
    assert "forgetting of sequential − forgetting of adapt_inf" in md and "| adapt_inf | 0, 1 |" in md
    # Each result names the machine it finished on and its base's dtype (smoke.yaml's float32), and the
    # table says which ran where.
    here = describe_machine()
    for f in (tmp_path / "runs").glob("*.json"):
        assert json.loads(f.read_text())["machine"] == here
        assert json.loads(f.read_text())["dtype"] == "float32"
    assert f"Hardware: {machine_line(here)}, base float32 (adapt_inf s0, sequential s0, adapt_inf s1)" in md
    # ... and how much of the machine the run had (CPU seconds of the run's process over its wall seconds)
    for f in (tmp_path / "runs").glob("*.json"):
        use = json.loads(f.read_text())["cpu_use"]
        assert use["wall_s"] > 0 and 0 < use["cpu_s"] and 0 < use["cpu_share"] <= 1.05
        assert use["cpu_share"] == pytest.approx(use["cpu_s"] / (use["wall_s"] * use["cores"]), abs=0.01)
        assert (use["first_round"], use["last_round"]) == (1, 2)  # the whole run in this sitting
    # The table needs only the result files: run directories can go.
    shutil.rmtree(tmp_path / "cmp_sequential_s0")
    again, stdout = _compare(tmp_path, capsys)
    assert stdout.count("result there already") == 3
    assert again["runs"] == out["runs"]
    # A run that shared the machine is named under the table (its seconds are not comparable), and one
    # whose share was never measured too.
    for name, use in (("adapt_inf_s0", {"wall_s": 100.0, "cpu_s": 80.0, "cores": 2, "cpu_share": 0.4}),
                      ("sequential_s0", None),
                      ("adapt_inf_s1", {"wall_s": 100.0, "cpu_s": 190.0, "cores": 2, "cpu_share": 0.95,
                                        "first_round": 2, "last_round": 2})):
        f = tmp_path / "runs" / f"{name}.json"
        r = json.loads(f.read_text())
        r["cpu_use"] = use
        f.write_text(json.dumps(r))
    flagged, _ = _compare(tmp_path, capsys, "--assemble-only")
    md = (tmp_path / "compare.md").read_text()
    assert "its seconds are inflated, its accuracies are not): adapt_inf s0 (0.40)." in md
    assert "CPU share not recorded (run before it was measured): sequential s0." in md
    assert flagged["shared_machine"] == ["adapt_inf s0 (0.40)"] and flagged["runs"] == out["runs"]
    # A run resumed from an earlier sitting: its share covers the rounds of the last one.
    assert "CPU share of the last sitting only (runs resumed from an earlier one): adapt_inf s1 (rounds 2–2)." in md
    assert flagged["cpu_share_last_sitting_only"] == ["adapt_inf s1 (rounds 2–2)"]
    # --status: which (strategy, seed) are done, stopped part way (resumable), not started
    _compare(tmp_path, capsys, "--status")  # reads, runs nothing
    assert sorted(p.name for p in (tmp_path / "runs").glob("*.json")) == files
    (tmp_path / "runs" / "adapt_inf_s1.json").unlink()
    _, report = _compare(tmp_path, capsys, "--status")
    assert "adapt_inf seed 0: done (runs/adapt_inf_s0.json, final avg acc" in report
    assert f"adapt_inf seed 1: 2 of 2 rounds finished in {tmp_path / 'cmp_adapt_inf_s1'}; stopped: the next " \
           "compare.py resumes it" in report
    # Resumed, it runs no round (all were finished) and says its CPU share measured none.
    resumed, _ = _compare(tmp_path, capsys)
    use = json.loads((tmp_path / "runs" / "adapt_inf_s1.json").read_text())["cpu_use"]
    assert (use["first_round"], use["last_round"]) == (3, 2) and resumed["runs"] == flagged["runs"]
    assert resumed["cpu_share_last_sitting_only"] == ["adapt_inf s1 (no round: all finished in an earlier sitting)"]
    (tmp_path / "runs" / "adapt_inf_s1.json").unlink()
    shutil.rmtree(tmp_path / "cmp_adapt_inf_s1")
    _, report = _compare(tmp_path, capsys, "--status")
    assert "adapt_inf seed 1: not started" in report
    # the runs here took seconds: the one left costs well under a tenth of a CPU-hour at their pace
    assert report.strip().splitlines()[-1].startswith("1 of 3 still to run; under 0.1 CPU-hours at the pace of "
                                                      "this folder's results (")
    # A rerun from scratch of one (strategy, seed) selects exactly the same samples.
    rerun, _ = _compare(tmp_path, capsys)
    assert rerun["runs"]["adapt_inf"]["selections_sha256"] == sha
    assert rerun["runs"]["adapt_inf"]["avg_acc"] == out["runs"]["adapt_inf"]["avg_acc"]
    # Another config: old results are not mixed in.
    other, _ = _compare(tmp_path, capsys, "--assemble-only", "train.lr=0.5")
    assert other["runs"] == {} and len(other["missing"]) == 3


def test_the_digest_covers_the_built_in_streams_data(monkeypatch):
    """A generator change alters the data and not the config: results must not survive it."""
    import lifelong.data.stream as stream

    compare = _load_compare()
    config = ROOT / "configs" / "smoke.yaml"
    first = compare.config_sha(config, "adapt_inf", 0, SHORT)
    assert compare.config_sha(config, "adapt_inf", 0, SHORT) == first
    assert compare.config_sha(config, "adapt_inf", 1, SHORT) != first
    compare._STREAMS.clear()
    real = stream.stream_digest
    monkeypatch.setattr(stream, "stream_digest", lambda *a, **k: "changed " + real(*a, **k))
    assert compare.config_sha(config, "adapt_inf", 0, SHORT) != first


def test_a_method_change_makes_only_the_strategies_it_affects_stale(monkeypatch):
    """The committed results of sequential/random/... survive a change to how ppl is routed; adapt_inf's do not."""
    compare = _load_compare()
    config = ROOT / "configs" / "smoke.yaml"
    before = {n: compare.config_sha(config, n, 0, SHORT) for n in ("sequential", "random", "ppl", "adapt_inf")}
    monkeypatch.setitem(compare.METHOD_CHANGES, "a later change", ("adapt_inf",))
    after = {n: compare.config_sha(config, n, 0, SHORT) for n in before}
    assert [n for n in before if before[n] != after[n]] == ["adapt_inf"]
    assert all(n in compare.STRATEGIES for ns in compare.METHOD_CHANGES.values() for n in ns)


def test_a_setting_a_strategy_never_reads_leaves_its_results_fresh():
    """Changing Adapt-inf's clustering, CCS, scoring or pruning settings must not send the baselines
    back to the CPU for another day: their digests leave out what they never read; Adapt-inf's
    cover it all, and what a baseline does read still counts."""
    compare = _load_compare()
    config = ROOT / "configs" / "smoke.yaml"
    names = ("sequential", "random", "random_prune", "oracle", "full", "multitask", "ppl", "adapt_inf",
             "adapt_inf_prune")
    before = {n: compare.config_sha(config, n, 0, SHORT) for n in names}

    def changed(*overrides: str) -> list[str]:
        return [n for n in names if compare.config_sha(config, n, 0, [*SHORT, *overrides]) != before[n]]

    assert changed("select.cluster.k=3", "select.cluster.features=embedding") == ["adapt_inf", "adapt_inf_prune"]
    assert changed("select.ccs.tail=rate") == ["ppl", "adapt_inf", "adapt_inf_prune"]
    assert changed("score.sketch.layers=[-2]") == ["ppl", "adapt_inf", "adapt_inf_prune"]
    assert changed("prune.epsilon=0.1") == ["adapt_inf_prune"]  # random_prune evicts uniformly
    assert changed("select.new_floor=2") == ["random", "random_prune", "ppl", "adapt_inf", "adapt_inf_prune"]
    assert changed("select.budget.fraction=0.25") == [n for n in names if n not in ("sequential", "full",
                                                                                   "multitask")]
    assert changed("train.lr=0.01") == list(names)


def _seed_copies(compare, name: str, seeds: list[int], runs: Path, cpu: str | None = None) -> None:
    """Result files of ``name`` for ``seeds``, fresh under the demo config: the committed seed-0
    result with its seed and digest replaced and, past seed 0, about 1 answer in 10 flipped (seeded),
    so the seeds differ; digests on the kernel the result records (``cpu``: as if run on that CPU
    generation). The committed files of other seeds may be stale (run on an earlier stream)."""
    src = json.loads((ROOT / "eval" / "results" / "clean" / "runs" / f"{name}_s0.json").read_text())
    if cpu:
        src["machine"]["cpu_generation"] = cpu
    rng = np.random.default_rng(len(name))
    for seed in seeds:
        r = json.loads(json.dumps(src))
        r["seed"] = seed
        r["config_sha"] = compare.config_sha(ROOT / "configs" / "demo.yaml", name, seed, [],
                                             compare.result_kernel(r))
        if seed:
            r["scores"] = {t: [[1.0 - v if rng.random() < 0.1 else v for v in row] for row in rows]
                           for t, rows in r["scores"].items()}
        (runs / f"{name}_s{seed}.json").write_text(json.dumps(r))


def test_the_dashboard_comes_from_the_result_files_alone(tmp_path, capsys):
    """compare.html needs no run directory: one line per strategy, its matrix averaged over its seeds."""
    import re

    (tmp_path / "runs").mkdir()
    compare = _load_compare()
    finals = {}
    for name in ("sequential", "random"):
        _seed_copies(compare, name, [0, 1, 2], tmp_path / "runs")
        for path in sorted((tmp_path / "runs").glob(f"{name}_s*.json")):
            r = json.loads(path.read_text())
            per_task = [np.mean(r["scores"][t][-1]) for t in r["tasks"]]  # last row, every question
            finals.setdefault(name, []).append(np.mean(per_task))
    assert len(finals["random"]) == 3 and len(set(finals["random"])) == 3
    capsys.readouterr()
    argv = ["--results", str(tmp_path), "--runs-dir", str(tmp_path / "no-runs"), "--strategies", "sequential,random",
            "--seeds", "0,1,2", "--assemble-only"]
    assert compare.main(argv) == 0
    assert not (tmp_path / "no-runs").exists()
    html = (tmp_path / "compare.html").read_text()
    assert "\u00b7 written" not in html  # a pure function of the result files: no time of writing
    assert compare.main(argv) == 0 and (tmp_path / "compare.html").read_text() == html
    for name, fs in finals.items():
        label = f"{name} (seeds {', '.join(str(s) for s in range(len(fs)))})"
        row = re.search(rf">{re.escape(label)}</a></td><td>{name}</td><td>7 / 7</td><td>([0-9.]+)</td>", html)
        assert row, label
        assert float(row.group(1)) == pytest.approx(np.mean(fs), abs=5e-4)


def test_results_of_seeds_not_asked_for_are_left_out_not_called_stale(tmp_path):
    """A run of one seed assembles a table of that seed; the other seeds' results are named as left
    out, and only a result whose digest differs from its (strategy, seed)'s is called stale."""
    (tmp_path / "runs").mkdir()
    compare = _load_compare()
    _seed_copies(compare, "sequential", [0, 1, 2], tmp_path / "runs")
    seeds = [0, 1, 2]
    s0 = tmp_path / "runs" / "sequential_s0.json"
    r = json.loads(s0.read_text())
    r["config_sha"] = "0" * 12  # as if run under another config
    s0.write_text(json.dumps(r))
    argv = ["--results", str(tmp_path), "--runs-dir", str(tmp_path / "no-runs"), "--strategies", "sequential",
            "--seeds", "0,1", "--assemble-only"]
    assert compare.main(argv) == 0
    out = json.loads((tmp_path / "compare.json").read_text())
    assert out["stale"] == ["sequential seed 0"]
    assert out["left_out"] == [f"sequential seed {s}" for s in seeds[2:]]
    assert out["seeds"]["sequential"] == [1]
    md = (tmp_path / "compare.md").read_text()
    assert "Ignored (run under another config, or before a change of the method in METHOD_CHANGES): " \
           "sequential seed 0\n" in md
    assert "Left out (seeds not asked for by this command; their results are kept): sequential seed 2" in md


def test_defects_trained_weighs_each_round_by_what_it_selected():
    from eval import compare_table
    comp = [{"selected": 10, "defects": {"selected": {"any": 0.5}}},
            {"selected": 30, "defects": {"selected": {"any": 0.1}}}]
    # (10 x 0.5 + 30 x 0.1) / 40 = 8 / 40
    assert compare_table.defects_trained({"composition": comp}) == pytest.approx(0.2)
    assert compare_table.defects_trained({"composition": []}) is None  # a result from before compositions
    assert compare_table.defects_trained({}) is None


def test_each_rounds_selection_has_a_digest_and_two_runs_are_told_apart_from_the_first_round_they_differ():
    """Two runs that select the same samples in rounds 1-2 and different ones in round 3 (what a change
    that acts only once the pool passes its cap does): equal per-round digests up to round 2."""
    from eval import compare, compare_table

    chosen = {run: list(enumerate((["x1", "x2"], ["x3", "x4"], third), start=1))
              for run, third in (("a", ["x5", "x6"]), ("b", ["x5", "x7"]))}
    per = {run: [compare.selection_digest([c]) for c in chosen[run]] for run in "ab"}
    assert per["a"][:2] == per["b"][:2] and per["a"][2] != per["b"][2] and len(set(per["a"])) == 3
    # the whole run's digest tells the two runs apart too
    assert compare.selection_digest(chosen["a"]) != compare.selection_digest(chosen["b"])
    costs = {run: {"per_round": [{"round": t, "selection_sha256": h} for t, h in enumerate(per[run], start=1)]}
             for run in "ab"}
    assert compare_table.first_different_round(costs["a"], costs["b"]) == 3
    assert compare_table.first_different_round(costs["a"], costs["a"]) == 0  # the same samples every round
    old = {"per_round": [{"round": t} for t in (1, 2, 3)]}  # a result from before per-round digests
    assert compare_table.first_different_round(costs["a"], old) is None
    assert compare_table.first_different_round(costs["a"], {"per_round": costs["a"]["per_round"][:2]}) is None


def test_the_gate_needs_the_margin_and_an_interval_above_zero():
    from eval import compare_table
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.01, 1000)

    def stats(shift):
        return {"avg_acc": base + shift, "forgetting": np.full(1000, 0.05)}

    for shift, passed in ((0.10, True), (0.05, False)):
        draws = {"oracle": stats(shift), "random": stats(0.0)}
        point = {n: {k: float(np.mean(v)) for k, v in d.items()} for n, d in draws.items()}
        out, lines = compare_table.gate(draws, point)
        assert out["oracle_above_random"]["passed"] is passed, shift
        assert out["oracle_above_random"]["difference"] == pytest.approx(shift)
        assert ("**passed**" in lines[0]) is passed
    # A difference of 0.10 whose interval reaches below 0 does not pass.
    noisy = {"oracle": {"avg_acc": base + 0.10 + rng.normal(0, 0.2, 1000), "forgetting": np.zeros(1000)},
             "random": stats(0.0)}
    point = {"oracle": {"avg_acc": 0.6, "forgetting": 0.0}, "random": {"avg_acc": 0.5, "forgetting": 0.05}}
    assert compare_table.gate(noisy, point)[0]["oracle_above_random"]["passed"] is False


def test_level_with_random_needs_the_interval_above_minus_the_tolerance():
    """adapt_inf_prune against uncapped random: met only when the whole interval of the difference
    lies above -LEVEL, not met when it lies below, within noise when it straddles it."""
    from eval import compare_table
    from eval.experiments import LEVEL

    base = np.random.default_rng(1).normal(0.8, 0.005, 1000)  # interval half-width ~0.01
    for shift, word in ((0.0, "**met**"), (-LEVEL - 0.03, "**not met**"), (-LEVEL, "within noise")):
        draws = {"adapt_inf_prune": {"avg_acc": base + shift, "forgetting": np.zeros(1000)},
                 "random": {"avg_acc": np.full(1000, 0.8), "forgetting": np.zeros(1000)}}
        point = {n: {k: float(np.mean(v)) for k, v in d.items()} for n, d in draws.items()}
        out, lines = compare_table.gate(draws, point)
        assert out["adapt_inf_prune_level_with_random"].startswith(word), (shift, out)
        assert lines == [f"- final avg acc of adapt_inf_prune − that of random (uncapped) > −{LEVEL}: "
                         f"{out['adapt_inf_prune_level_with_random']}"]


def test_a_difference_that_rounds_to_nothing_is_never_written_as_a_negative_zero():
    """Every signed number of the tables (verdicts, per-seed differences, ablation cells) goes through one
    formatter: -0.0004 is "+0.000", not "-0.000" (which reads as a loss the rounding hid)."""
    from eval import ablations, compare_table

    assert [compare_table.shown(x) for x in (-0.0004, -0.0005001, 0.0004, -0.0)] == \
        ["+0.000", "-0.001", "+0.000", "+0.000"]
    assert compare_table.shown(-0.04, "{:.1f}") == "0.0" and compare_table.shown(-0.06, "{:.1f}") == "-0.1"
    assert compare_table.per_seed({1: -0.0002, 0: 0.0123}) == "s0 +0.012, s1 +0.000"
    tiny = np.linspace(-0.0004, 0.0003, 1000)  # interval straddles 0, point rounds to zero
    assert compare_table.verdict(tiny, -0.0001, seeds={0: -0.0003, 1: 0.0001}) == \
        "within noise (+0.000, 95% CI [+0.000, +0.000]; per seed s0 +0.000, s1 +0.000)"
    assert ablations.difference(tiny, -0.0001) == "+0.000 [+0.000, +0.000] within noise"
    gate = {"passed": False, "difference": -0.0002, "threshold": 0.04}
    assert compare_table.gate_outcome(gate) == "**not passed** (difference +0.000, needs ≥ 0.04"


def test_the_demo_goals_are_reported_on_the_demo_stream_only(tmp_path):
    """The learning goals are about what `make demo` runs: compare.md states them under the demo's
    config and leaves them out under any other base config (here a copy of the demo's under another
    name, so the same result files stay fresh)."""
    import shutil

    compare = _load_compare()
    (tmp_path / "runs").mkdir()
    for name in ("adapt_inf_prune", "sequential"):
        _seed_copies(compare, name, [0], tmp_path / "runs")
    base = ["--results", str(tmp_path), "--runs-dir", str(tmp_path / "no-runs"),
            "--strategies", "adapt_inf_prune,sequential", "--seeds", "0", "--assemble-only"]
    assert compare.main(base) == 0
    md = (tmp_path / "compare.md").read_text()
    assert "The demo's learning goals" in md and "- sequential forgets ≥ 0.2" in md
    assert json.loads((tmp_path / "compare.json").read_text())["demo_goals"]
    other = shutil.copy(ROOT / "configs" / "demo.yaml", tmp_path / "other.yaml")
    assert compare.main([*base, "--config", str(other)]) == 0
    out = json.loads((tmp_path / "compare.json").read_text())
    assert out["stale"] == [] and out["demo_goals"] == {}
    md = (tmp_path / "compare.md").read_text()
    assert "learning goals" not in md and "| adapt_inf_prune |" in md


def test_each_difference_is_also_shown_on_each_seed_and_paired_on_the_seeds_both_have():
    """A mean over seeds can rest on one seed: every verdict on a difference lists it per seed, from the
    results themselves (here adapt_inf_prune right on every question at the end on seed 0, on none on
    seed 1, random_prune on none: +1 and +0). A strategy run on a seed the other lacks is compared on the
    seeds both have, and the line says so."""
    from eval import compare_table

    def result(name, seed, final):
        rows = [[0.0] * 2, [1.0] * 2, [final] * 2]
        return {"strategy": name, "seed": seed, "tasks": ["a", "b"], "scores": {"a": rows, "b": rows},
                "questions": {"a": ["a0", "a1"], "b": ["b0", "b1"]}}

    by = {"adapt_inf_prune": [result("adapt_inf_prune", 0, 1.0), result("adapt_inf_prune", 1, 0.0)],
          "random_prune": [result("random_prune", s, 0.0) for s in (0, 1)]}
    assert compare_table.seed_differences(by, "adapt_inf_prune", "random_prune") == {0: 1.0, 1: 0.0}
    # forgetting: 1 - final on both tasks
    assert compare_table.seed_differences(by, "random_prune", "adapt_inf_prune", "forgetting") == {0: 1.0, 1: 0.0}
    draws = {n: {"avg_acc": np.full(100, v), "forgetting": np.full(100, 1 - v)}
             for n, v in (("adapt_inf_prune", 0.5), ("random_prune", 0.0))}
    point = {n: {k: float(v[0]) for k, v in d.items()} for n, d in draws.items()}
    out, lines = compare_table.gate(draws, point, by)
    assert out["adapt_inf_prune_above_random_prune"] == \
        "**met** (+0.500, 95% CI [+0.500, +0.500]; per seed s0 +1.000, s1 +0.000)"
    assert lines[1].endswith("per seed s0 +1.000, s1 +0.000)")  # forgetting of random_prune − adapt_inf_prune
    assert "per seed" not in compare_table.gate(draws, point)[0]["adapt_inf_prune_above_random_prune"]
    # adapt_inf_prune also on seed 2 (right throughout): its mean over 0-2 is 2/3, but paired with
    # random_prune it is on seeds 0 and 1 only: +0.5, not +0.667
    by["adapt_inf_prune"].append(result("adapt_inf_prune", 2, 1.0))
    line = compare_table.gate(draws, point, by)[0]["adapt_inf_prune_above_random_prune"]
    assert line.startswith("within noise (+0.500, 95% CI [") and line.endswith(
        "; per seed s0 +1.000, s1 +0.000) (on seeds 0, 1)"), line


def test_a_table_assembles_the_same_on_any_machine_and_running_never_mixes_kernels(tmp_path, capsys):
    """Results record the kernel they ran on (dtype and CPU generation), and the table's digests are
    computed for the kernel the folder's results ran on, not this machine's: reassembling a committed
    table elsewhere must not call every result stale. Running here into that folder is refused, since
    what ran here could not be paired with them and each run would replace one; the files stay as they were."""
    compare = _load_compare()
    runs = tmp_path / "runs"
    runs.mkdir()
    _seed_copies(compare, "sequential", [0, 1], runs, cpu="family 99 model 9")  # a CPU no machine here has
    before = {p.name: p.read_bytes() for p in runs.iterdir()}
    theirs = compare.result_kernel(json.loads((runs / "sequential_s0.json").read_text()))
    assert theirs.endswith(" on family 99 model 9")
    argv = ["--results", str(tmp_path), "--runs-dir", str(tmp_path / "no-runs"), "--strategies", "sequential",
            "--seeds", "0,1"]
    assert compare.main([*argv, "--assemble-only"]) == 0
    out = json.loads((tmp_path / "compare.json").read_text())
    assert out["seeds"] == {"sequential": [0, 1]} and out["stale"] == [] and out["missing"] == []
    assert "(family 99 model 9)" in out["hardware"]
    capsys.readouterr()
    assert compare.main([*argv, "--status"]) == 0
    status = capsys.readouterr().out
    assert f"holds results run in {theirs} (2); this machine runs " in status and "sequential seed 1: done" in status
    with pytest.raises(SystemExit):
        compare.main(argv)
    err = capsys.readouterr().err
    assert f"holds results run in {theirs}; this machine runs " in err and "--results " in err
    assert {p.name: p.read_bytes() for p in runs.iterdir()} == before
    assert not (tmp_path / "no-runs").exists()


def test_the_status_estimates_what_is_left_from_the_pace_of_the_folders_results_on_its_kernel(tmp_path):
    compare = _load_compare()
    runs = tmp_path / "runs"
    runs.mkdir()
    _seed_copies(compare, "sequential", [0], runs, cpu="family 99 model 9")
    _seed_copies(compare, "random", [0], runs, cpu="family 98 model 8")  # another kernel: no pace for this one
    for name, cpu_s in (("sequential", 5400.0), ("random", 36000.0)):
        r = json.loads((runs / f"{name}_s0.json").read_text())
        r["cpu_use"] = {**(r.get("cpu_use") or {}), "cpu_s": cpu_s}
        (runs / f"{name}_s0.json").write_text(json.dumps(r))
    theirs = compare.result_kernel(json.loads((runs / "sequential_s0.json").read_text()))
    demo = ROOT / "configs" / "demo.yaml"
    plan = [("sequential", 0), ("sequential", 1), ("sequential", 2), ("random", 1)]
    out = compare.status(demo, tmp_path / "no-runs", plan, [], tmp_path, theirs).splitlines()
    assert out[0].startswith("sequential seed 0: done")
    # two sequential runs at 1.5 h each; random has run only on another kernel
    assert out[-1] == (f"3 of 4 still to run; about 3.0 CPU-hours at the pace of this folder's results ({theirs}), "
                       "not counting random (none run here yet)")
    out = compare.status(demo, tmp_path / "no-runs", [("random", 1)], [], tmp_path, theirs).splitlines()
    assert out[-1] == "1 of 1 still to run; no pace to estimate their cost: none of random has run here"
