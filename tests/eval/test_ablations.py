"""eval/ablations.py: the table of ablations is data; its assembly reads only result files."""
import json

import pytest

from eval import ablations, compare
from eval.experiments import ABLATION_BASE, ABLATION_GROUPS, ABLATIONS, STRATEGIES, STREAMS

SHA = "abcdef012345"


def _result(name: str, seed: int, final: float, sha: str = SHA) -> dict:
    """Two tasks of 4 questions, two rounds: base 0, every question right after round 1, then ``final``
    on every question; 40 samples trained, 5% of them flagged (10 x 0.2 in round 1, none of 30 in round 2)."""
    rows = [[0.0] * 4, [1.0] * 4, [final] * 4]
    comp = [{"selected": 10, "defects": {"selected": {"any": 0.2}}},
            {"selected": 30, "defects": {"selected": {"any": 0.0}}}]
    return {"version": 1, "strategy": name, "seed": seed, "config_sha": sha, "tasks": ["a", "b"],
            "questions": {"a": ["a0", "a1", "a2", "a3"], "b": ["b0", "b1", "b2", "b3"]},
            "scores": {"a": rows, "b": rows}, "costs": {"samples_trained": 40, "composition": comp}}


def _write(runs, res):
    (runs / f"{res['strategy']}_s{res['seed']}.json").write_text(json.dumps(res))


def test_assembly_pairs_each_row_with_the_reference(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed in (0, 1):
        _write(runs, _result(ABLATION_BASE, seed, 0.0))
        _write(runs, _result("k4", seed, 1.0))  # every question right at the end: +1 in every resample
        _write(runs, _result("k16", seed, 0.0))  # the reference's answers: 0 in every resample
    _write(runs, _result("prune_quota", 0, 1.0))  # one seed only: paired with the reference's seed 0
    for seed in (0, 1, 2):  # a seed the reference lacks: compared on the seeds both have
        _write(runs, _result("k8", seed, 1.0 if seed < 2 else 0.0))
    for seed, final in ((0, 1.0), (1, 0.0)):  # +1 on one seed, 0 on the other: the mean rests on seed 0
        _write(runs, _result("k_auto", seed, final))
    _write(runs, _result("new_floor_0", 0, 1.0, sha="0" * 12))  # another config: stale
    expected = {(n, s): SHA for n in (ABLATION_BASE, "k4", "k16", "k_auto", "prune_quota", "new_floor_0")
                for s in (0, 1)}
    expected.update({("k8", s): SHA for s in (0, 1, 2)})
    md = ablations.assemble_ablations("python -m eval.ablations", tmp_path, expected)
    out = json.loads((tmp_path / "ablations.json").read_text())
    rows = out["rows"]
    assert rows["k4"]["avg_acc"] == 1.0 and rows[ABLATION_BASE]["avg_acc"] == 0.0
    assert rows["k4"]["minus_reference"] == 1.0 and rows["k4"]["minus_reference_ci95"] == [1.0, 1.0]
    assert rows["k16"]["minus_reference"] == 0.0 and rows["k16"]["minus_reference_ci95"] == [0.0, 0.0]
    assert rows["prune_quota"]["seeds"] == [0] and rows["prune_quota"]["minus_reference"] == 1.0
    assert rows[ABLATION_BASE]["minus_reference"] is None
    assert rows["k_auto"]["minus_reference"] == 0.5
    assert rows["k_auto"]["minus_reference_per_seed"] == {"0": 1.0, "1": 0.0}  # json keys are strings
    assert "| s0 +1.000, s1 +0.000 | " in md
    assert rows["prune_quota"]["minus_reference_per_seed"] == {"0": 1.0}
    # k8 averages 2/3 over its seeds, but its difference is on seeds 0 and 1, where it is right throughout
    assert rows["k8"]["avg_acc"] == pytest.approx(2 / 3) and rows["k8"]["minus_reference"] == 1.0
    assert rows["k8"]["minus_reference_seeds"] == [0, 1] and rows["k8"]["minus_reference_ci95"] == [1.0, 1.0]
    assert "| k8: `select.cluster.k=8` | 0, 1, 2 | 0.667 |" in md and "**above** (on seeds 0, 1) |" in md
    # (10 x 0.2 + 30 x 0) / 40
    assert rows["k4"]["defects_trained"] == pytest.approx(0.05) and rows["k4"]["samples_trained"] == 40
    assert rows["k4"]["overrides"] == [*STRATEGIES[ABLATION_BASE], "select.cluster.k=4"]
    assert out["stale"] == ["new_floor_0 seed 0"]
    assert out["missing"] == ["new_floor_0 seed 0", "new_floor_0 seed 1", "prune_quota seed 1"]
    assert ("| k4: `select.cluster.k=4` | 0, 1 | 1.000 | [1.000, 1.000] | +1.000 [+1.000, +1.000] **above** | "
            "s0 +1.000, s1 +1.000 | — | 0.000 |") in md  # — : results without per-round digests
    assert "| k16: `select.cluster.k=16` | 0, 1 | 0.000 | [0.000, 0.000] | +0.000 [+0.000, +0.000] within noise |" in md
    # rows not asked for are left out, and so are sections with none asked for
    assert "route_random" not in md and "## routing" not in md and "## sampling within clusters" not in md
    assert "Left out: the rows this command did not ask for (`--rows`); their results are kept." in md
    assert "| new_floor_0: `select.new_floor=0` | — | not run yet |" in md
    shown = [t for t, (_, names) in ABLATION_GROUPS.items() if {n for n, _ in expected} & set(names)]
    assert len(shown) == 3 and all(f"## {t}\n" in md for t in shown)
    assert md.count(f"| {ABLATION_BASE}: ") == len(shown)  # the reference heads every section shown
    assert (tmp_path / "ablations.md").read_text() == md


def test_every_row_changes_one_thing_at_the_same_budget_and_cap():
    from lifelong.run_config import load_run_config

    grouped = [n for _, names in ABLATION_GROUPS.values() for n in names]
    assert sorted(grouped) == sorted(ABLATIONS) and len(set(grouped)) == len(grouped)  # each row in one section
    assert not set(ABLATIONS) & set(STRATEGIES)  # result files of their own
    # the budget split is chosen per stream: each base config already has one of the rows
    for stream, in_base in (("messy", {"share_equal"}), ("clean", {"share_sqrt"})):
        ref = load_run_config(STREAMS[stream], [*STRATEGIES[ABLATION_BASE], "name=x", "runs_dir=x"])
        dumps = {compare.digest_dump(ref)}
        same = set()
        for name, overrides in ABLATIONS.items():
            assert overrides[:len(STRATEGIES[ABLATION_BASE])] == STRATEGIES[ABLATION_BASE]
            assert not any(o.startswith(("prune.cap", "select.budget", "select.strategy")) for o in ablations.own(name))
            cfg = load_run_config(STREAMS[stream], [*overrides, "name=x", "runs_dir=x"])  # every row resolves
            assert (cfg.prune.cap, cfg.select.budget) == (ref.prune.cap, ref.select.budget)
            dump = compare.digest_dump(cfg)
            if dump == compare.digest_dump(ref):
                same.add(name)
            dumps.add(dump)
        assert same == in_base, stream
        assert len(dumps) == len(ABLATIONS) + 1 - len(in_base)  # every other row is another experiment


def test_keys_added_later_enter_the_digest_only_off_their_earlier_value():
    from lifelong.run_config import dump_run_config, load_run_config

    cfg = load_run_config(STREAMS["messy"], ["name=x", "runs_dir=x"])
    dump = compare.digest_dump(cfg)
    assert "sampling:" not in dump and "source:" not in dump and "sampling:" in dump_run_config(cfg)
    changed = load_run_config(STREAMS["messy"], ["name=x", "runs_dir=x", "select.sampling=uniform"])
    assert "sampling: uniform" in compare.digest_dump(changed)


def test_validation_runs_answer_the_validation_questions_in_folders_of_their_own(tmp_path, capsys):
    assert ablations.main(["--validation", "--status", "--rows", "k4", "--seeds", "0",
                           "--runs-dir", str(tmp_path)]) == 0
    assert "k4 seed 0: not started" in capsys.readouterr().out
    val = compare.resolved_config(STREAMS["messy"], "k4", 0, ["stream.builtin_config.messy.held_out=val"])
    assert val.stream.builtin_config.messy.held_out == "val"
    assert compare.digest_dump(val) != compare.digest_dump(compare.resolved_config(STREAMS["messy"], "k4", 0, []))


def test_validation_on_the_clean_stream_holds_out_its_own_validation_split(tmp_path, capsys):
    from eval.experiments import VALIDATION

    assert ablations.main(["--stream", "clean", "--validation", "--status", "--rows", "share_size", "--seeds", "0",
                           "--runs-dir", str(tmp_path)]) == 0
    assert "share_size seed 0: not started" in capsys.readouterr().out
    val = compare.resolved_config(STREAMS["clean"], "share_equal", 0, [VALIDATION["clean"]])
    assert val.stream.builtin_config.held_out == "val"
    test = compare.resolved_config(STREAMS["clean"], "share_equal", 0, [])
    assert test.stream.builtin_config.held_out == "test"
    # the test runs' digest reads as it did before the key existed; the validation runs' does not
    import yaml

    def builtin(cfg):
        return yaml.safe_load(compare.digest_dump(cfg))["stream"]["builtin_config"]

    assert "held_out" not in builtin(test) and builtin(val)["held_out"] == "val"


def test_a_row_the_base_config_already_has_is_never_run_and_says_so(tmp_path, capsys):
    import yaml

    d = yaml.safe_load(STREAMS["clean"].read_text())
    d["select"]["size_power"] = 0.5  # a base config with the square-root split
    config = tmp_path / "base.yaml"
    config.write_text(yaml.safe_dump(d))
    assert ablations.no_ops(ablations.row_digests(config, ["share_sqrt", "share_size"], [0, 1], [])) == {"share_sqrt"}
    assert ablations.main(["--config", str(config), "--stream", "clean", "--status", "--rows", "share_sqrt,share_size",
                           "--seeds", "0", "--runs-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "share_size seed 0: not started" in out and "share_sqrt seed 0" not in out
    expected = {(n, 0): SHA for n in (ABLATION_BASE, "share_sqrt", "share_size")}
    md = ablations.assemble_ablations("cmd", tmp_path, expected, {"share_sqrt"})
    assert "| share_sqrt: `select.size_power=0.5` | — | the base config already has it: the reference row |" in md
    assert "| share_size: `select.size_power=1` | — | not run yet |" in md
    out = json.loads((tmp_path / "ablations.json").read_text())
    assert out["in_base_config"] == ["share_sqrt"] and "share_sqrt seed 0" not in out["missing"]


def test_rows_asked_for_alone_are_still_paired_with_the_reference(tmp_path):
    """`--rows route_random` (what a run of one row writes) assembles with the reference's seeds, so the
    table it commits has the row's difference, not a row with nothing to be compared to."""
    digests = ablations.row_digests(STREAMS["messy"], ["route_random"], [0], [])
    (tmp_path / "runs").mkdir()
    _write(tmp_path / "runs", _result(ABLATION_BASE, 0, 0.0, sha=digests[(ABLATION_BASE, 0)]))
    _write(tmp_path / "runs", _result("route_random", 0, 1.0, sha=digests[("route_random", 0)]))
    assert ablations.main(["--stream", "messy", "--rows", "route_random", "--seeds", "0", "--assemble-only",
                           "--results", str(tmp_path), "--runs-dir", str(tmp_path / "r")]) == 0
    rows = json.loads((tmp_path / "ablations.json").read_text())["rows"]
    assert rows["route_random"]["minus_reference"] == 1.0 and rows[ABLATION_BASE]["seeds"] == [0]
    md = (tmp_path / "ablations.md").read_text()
    assert md.count("## ") == 1 and "## routing" in md and "| route_random: `select.route.mode=random` | 0 |" in md
    assert "route_ppl" not in md and "Not run yet" not in md


def test_a_row_asked_for_on_a_new_seed_brings_its_reference_first(tmp_path, capsys):
    assert ablations.main(["--status", "--rows", "k4,k16", "--seeds", "7,8", "--runs-dir", str(tmp_path)]) == 0
    out = [line.split(":")[0] for line in capsys.readouterr().out.splitlines() if line.endswith("not started")]
    assert out == [f"{n} seed {s}" for s in (7, 8) for n in (ABLATION_BASE, "k4", "k16")]


def test_with_random_prune_in_the_folder_every_row_is_also_compared_with_a_uniform_draw(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed in (0, 1):
        _write(runs, _result(ABLATION_BASE, seed, 1.0))
        _write(runs, _result(ablations.UNIFORM, seed, 0.5))  # a score of 0.5 on every question at the end
        _write(runs, _result("k4", seed, 0.0))
    _write(runs, _result("k16", 0, 1.0))  # one seed: compared on it
    for seed in (0, 3):  # seed 3: neither the reference nor random_prune has it
        _write(runs, _result("k8", seed, 1.0))
    _write(runs, _result(ablations.UNIFORM, 2, 0.0, sha="0" * 12))  # another config: not the yardstick
    expected = {(n, s): SHA for n in (ABLATION_BASE, "k4", "k16") for s in (0, 1)}
    expected.update({("k8", s): SHA for s in (0, 3)})
    uniform = {(ablations.UNIFORM, s): SHA for s in (0, 1, 2)}
    md = ablations.assemble_ablations("cmd", tmp_path, expected, uniform=uniform)
    rows = json.loads((tmp_path / "ablations.json").read_text())["rows"]
    assert rows[ABLATION_BASE]["minus_random_prune"] == 0.5 and rows[ABLATION_BASE]["minus_random_prune_ci95"] == [0.5, 0.5]
    assert rows["k4"]["minus_random_prune"] == -0.5 and rows["k4"]["minus_random_prune_seeds"] == [0, 1]
    assert rows["k16"]["minus_random_prune"] == 0.5 and rows["k16"]["minus_random_prune_seeds"] == [0]
    assert "| per seed | drawn differently from | − random_prune (paired) | forgetting |" in md and "seeds 0, 1 in this folder" in md
    assert "| (reference) | — | — | +0.500 [+0.500, +0.500] **above** | " in md
    assert "| s0 -1.000, s1 -1.000 | — | -0.500 [-0.500, -0.500] **below** | " in md
    assert "| s0 +0.000 | — | +0.500 [+0.500, +0.500] **above** | " in md
    # a seed random_prune lacks: compared on the seeds both have, and the cell says which
    assert rows["k8"]["minus_random_prune"] == 0.5 and rows["k8"]["minus_random_prune_seeds"] == [0]
    assert "| s0 +0.000 | — | +0.500 [+0.500, +0.500] **above** (on seeds 0) | " in md
    assert "| k_auto: " not in md  # not asked for
    # without random_prune's results, no such column
    md = ablations.assemble_ablations("cmd", tmp_path, expected)
    assert "random_prune" not in md and "minus_random_prune" not in (tmp_path / "ablations.json").read_text()


def test_each_row_says_from_which_round_its_draws_differ_from_the_references(tmp_path):
    """A change that acts only once the pool passes its cap selects what the reference selects until
    then: the table says from which round a row's selections differ, per seed where the seeds disagree."""
    runs = tmp_path / "runs"
    runs.mkdir()

    def with_rounds(res: dict, digests: list[str]) -> dict:
        res["costs"]["per_round"] = [{"round": t, "selection_sha256": h} for t, h in enumerate(digests, start=1)]
        return res

    for seed in (0, 1):
        _write(runs, with_rounds(_result(ABLATION_BASE, seed, 0.5), [f"a{seed}", f"b{seed}"]))
        _write(runs, with_rounds(_result("prune_uniform", seed, 0.5), [f"a{seed}", f"c{seed}"]))  # round 2
        _write(runs, with_rounds(_result("k4", seed, 0.5), [f"d{seed}", f"c{seed}"]))  # round 1
    _write(runs, with_rounds(_result("k16", 0, 0.5), ["a0", "b0"]))  # the reference's samples throughout
    _write(runs, with_rounds(_result("k16", 1, 0.5), ["a1", "x"]))
    _write(runs, _result("prune_quota", 0, 0.5))  # a result from before per-round digests
    expected = {(n, s): SHA for n in (ABLATION_BASE, "prune_uniform", "k4", "k16") for s in (0, 1)}
    expected[("prune_quota", 0)] = SHA
    md = ablations.assemble_ablations("cmd", tmp_path, expected)
    rows = json.loads((tmp_path / "ablations.json").read_text())["rows"]
    assert rows["prune_uniform"]["first_different_round"] == {"0": 2, "1": 2}
    assert rows["k4"]["first_different_round"] == {"0": 1, "1": 1}
    assert rows["k16"]["first_different_round"] == {"0": 0, "1": 2}
    assert rows["prune_quota"]["first_different_round"] == {"0": None}
    assert rows[ABLATION_BASE]["first_different_round"] is None
    assert "| per seed | drawn differently from | forgetting |" in md
    assert "| s0 +0.000, s1 +0.000 | round 2 | " in md and "| s0 +0.000, s1 +0.000 | round 1 | " in md
    assert "| s0 +0.000, s1 +0.000 | s0 never, s1 round 2 | " in md and "| s0 +0.000 | — | " in md
    assert md.count("| (reference) | — | — | ") == 2  # the reference row heads each section (pruning, K)
