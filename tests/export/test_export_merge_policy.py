"""Export of an ``adapter_policy: merge`` run: the adapter stacks every round's LoRA, --merge replays the merges."""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from lifelong.export import ExportError, export, load_exported
from lifelong.run_config import dump_run_config, load_run_config

# The run merged round 1 into the fp32 base before round 2; the export adds the
# same deltas without that intermediate rounding: float error only.
ATOL = 1e-4


def _inputs(batch: dict) -> dict:
    return {k: v.contiguous() for k, v in batch.items() if k != "labels"}


def _logits(loaded, batch) -> torch.Tensor:
    with torch.no_grad():
        return loaded.forward(batch)[:, 1:]


@pytest.fixture(scope="module")
def merge_run(tiny_run, tmp_path_factory):
    """The tiny run's directory with adapter_policy=merge, and the model the run's loop holds after round 2."""
    from lifelong.models import load_model

    src, _, base_dir = tiny_run
    run_dir = tmp_path_factory.mktemp("merge") / src.name
    shutil.copytree(src, run_dir)
    cfg = dataclasses.replace(load_run_config(src), adapter_policy="merge")
    (run_dir / "config.yaml").write_text(dump_run_config(cfg))
    model = load_model(cfg.model)  # as the loop does: merge round 1, then round 2's adapter on top
    model.load_adapter(run_dir / "adapters/round_1")
    model.merge_and_restart()
    model.load_adapter(run_dir / "adapters/round_2")
    return run_dir, model, base_dir


def test_stacked_adapter_gives_the_merged_runs_model(merge_run, tiny_batch, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    run_dir, model, base_dir = merge_run
    ref = _logits(model, tiny_batch)
    out = export(run_dir, tmp_path / "exp", round=2, base_model=str(base_dir))
    conf = json.loads((out / "adapter_config.json").read_text())
    assert conf["r"] == 8 and conf["lora_alpha"] == 8.0  # two rounds of rank 4, scaling folded into B
    assert "adapter_policy: merge" in (out / "README.md").read_text()
    # Plain peft on the saved tiny base.
    base = AutoModelForImageTextToText.from_pretrained(base_dir)
    plain = PeftModel.from_pretrained(base, out).eval()
    with torch.no_grad():
        got = plain(**_inputs(tiny_batch)).logits.float()[:, :-1]
    torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)
    # lifelong's own loader rebuilds a rank-8 LoRA from lifelong_model.yaml.
    torch.testing.assert_close(_logits(load_exported(out), tiny_batch), ref, atol=ATOL, rtol=0)
    # Round 2's adapter alone (what a plain copy would export) is a different model.
    alone = load_exported(export(run_dir, tmp_path / "r1", round=1))
    alone.load_adapter(run_dir / "adapters/round_2")
    assert (_logits(alone, tiny_batch) - ref).abs().max() > 100 * ATOL


def test_merged_weights_replay_the_merges(merge_run, tiny_batch, tmp_path):
    from transformers import AutoModelForImageTextToText

    run_dir, model, _ = merge_run
    out = export(run_dir, tmp_path / "merged", round=2, merge=True)
    merged = AutoModelForImageTextToText.from_pretrained(out).eval()
    with torch.no_grad():
        got = merged(**_inputs(tiny_batch)).logits.float()[:, :-1]
    torch.testing.assert_close(got, _logits(model, tiny_batch), atol=ATOL, rtol=0)


def test_a_missing_earlier_round_is_refused_and_nothing_written(merge_run, tmp_path):
    run_dir, _, _ = merge_run
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    shutil.rmtree(broken / "adapters/round_1")
    with pytest.raises(ExportError, match=r"rounds \[1\] have none"):
        export(broken, tmp_path / "out", round=2)
    assert not (tmp_path / "out").exists()


def test_lifelong_eval_round_n_replays_the_merges(merge_run, tiny_batch, tmp_path, capsys):
    from lifelong.cli import main as cli_main
    from lifelong.models.replay import load_round_model

    def main(argv):
        return cli_main(["eval", *argv])

    run_dir, model, _ = merge_run
    cfg = load_run_config(run_dir)
    ref = _logits(model, tiny_batch)
    got = _logits(load_round_model(cfg, run_dir, 2), tiny_batch)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    # round 2's delta alone on the plain base is another model
    alone = _logits(load_round_model(dataclasses.replace(cfg, adapter_policy="continue"), run_dir, 2), tiny_batch)
    assert (alone - ref).abs().max() > 100 * ATOL
    # round 1 has nothing to merge before it
    torch.testing.assert_close(_logits(load_round_model(cfg, run_dir, 1), tiny_batch),
                               _logits(load_round_model(dataclasses.replace(cfg, adapter_policy="continue"),
                                                        run_dir, 1), tiny_batch), atol=0, rtol=0)
    # the command says what it evaluated
    assert main(["--run", str(run_dir), "--round", "2", "--max-samples", "1", "--no-progress"]) == 0
    assert "adapter round_2 on the base with rounds 1..1 merged" in capsys.readouterr().out
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    shutil.rmtree(broken / "adapters/round_1")
    with pytest.raises(SystemExit, match=r"rounds \[1\] have none"):
        load_round_model(cfg, broken, 2)


def test_round_model_moves_back_and_forth_to_the_same_states(merge_run, tiny_batch):
    """One RoundModel serving the loop, eval and export: any order of rounds gives each round's own model."""
    from lifelong.layout import RunLayout
    from lifelong.models.replay import RoundModel

    run_dir, model, _ = merge_run
    cfg = load_run_config(run_dir)

    def fresh(t):
        return _logits(RoundModel(cfg.model, True, RunLayout(run_dir)).at(t), tiny_batch)

    one, two = fresh(1), fresh(2)
    torch.testing.assert_close(two, _logits(model, tiny_batch), atol=0, rtol=0)  # the loop's own model
    assert (one - two).abs().max() > 1e-4  # different rounds, different models
    moving = RoundModel(cfg.model, True, RunLayout(run_dir))
    for t, want in ((2, two), (1, one), (2, two), (0, fresh(0))):
        torch.testing.assert_close(_logits(moving.at(t), tiny_batch), want, atol=0, rtol=0)
    with pytest.raises(FileNotFoundError, match=r"rounds \[3, 4, 5, 6, 7\] have none"):
        moving.at(7)
