"""eval/compare.py: the table comes from the runs, and a re-run reproduces the selections."""
import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHORT = ["stream.builtin_config.order=[vqa_shape,digits,text_only]", "score.shard_size=16",
         "eval.max_samples_per_task=4"]


def _compare(runs: Path, strategies: str, *extra: str) -> dict:
    cmd = [sys.executable, "eval/compare.py", "--config", "configs/smoke.yaml", "--runs-dir", str(runs),
           "--results", str(runs), "--strategies", strategies, *extra, *SHORT]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((runs / "compare.json").read_text())


def test_table_matches_the_runs_and_a_rerun_selects_the_same(tmp_path):
    out = _compare(tmp_path / "a", "sequential,adapt_inf", "--questions", "6")
    md = (tmp_path / "a/compare.md").read_text()
    assert "| sequential |" in md and "| adapt_inf |" in md
    assert (tmp_path / "a/compare.html").stat().st_size > 10_000
    for name in ("sequential", "adapt_inf"):
        run = tmp_path / "a" / f"cmp_{name}"
        row = out["runs"][name]
        sel = [json.loads((run / f"rounds/{t}/select/selection.json").read_text())["ids"] for t in (1, 2, 3)]
        assert row["samples_trained"] == sum(len(s) for s in sel)
        with open(run / "metrics/accuracy_matrix.csv") as f:
            last = list(csv.reader(f))[-1]
        assert abs(row["avg_acc"] - sum(map(float, last[1:])) / 3) < 1e-9
    # 40 new samples per round; adapt_inf takes 50% of a pool of 40, 80, 120 (no cap) and scores all of it.
    assert out["runs"]["sequential"]["samples_trained"] == 120
    assert out["runs"]["sequential"]["samples_scored"] == 0
    assert [r["selected"] for r in out["runs"]["adapt_inf"]["per_round"]] == [20, 40, 60]
    assert out["runs"]["adapt_inf"]["samples_scored"] == 40 + 80 + 120
    assert out["runs"]["sequential"]["selections_sha256"] != out["runs"]["adapt_inf"]["selections_sha256"]
    for name in ("sequential", "adapt_inf"):
        lo, hi = out["runs"][name]["avg_acc_ci95"]
        assert lo <= out["runs"][name]["avg_acc"] <= hi
    assert "forgetting of sequential − forgetting of adapt_inf" in md
    # --questions 6: every round re-evaluated on 6 questions per task (the runs used 4), with its own intervals.
    for name in ("sequential", "adapt_inf"):
        for t in range(4):
            lines = (tmp_path / "a" / f"cmp_{name}/reeval_q6/round_{t}.jsonl").read_text().splitlines()
            assert len(lines) == 3 * 6
        lo, hi = out["runs"][name]["avg_acc_q6_ci95"]
        assert lo <= out["runs"][name]["avg_acc_q6"] <= hi
    assert "Questions per task: vqa_shape 6, digits 6, text_only 6." in md
    again = _compare(tmp_path / "b", "adapt_inf")
    assert again["runs"]["adapt_inf"]["selections_sha256"] == out["runs"]["adapt_inf"]["selections_sha256"]
