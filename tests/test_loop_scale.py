"""The loop at scale, on a short real run: the pool is read one shard at a time, score stores
and pruned content do not pile up, and a report reads one round's files."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lifelong.data.pool import Pool
from lifelong import stages
from lifelong.layout import RunLayout
from lifelong.loop import Run
from lifelong.run_config import load_run_config

pytestmark = pytest.mark.e2e  # a whole run of the loop: in the default suite (-m 'not e2e' leaves it out)

ROOT = Path(__file__).resolve().parents[1]
SHARD = 16
# Two datasets of 40; round 2 prunes 80 -> 60 with its own embedding pass (refresh < 1).
ARGS = ["stream.builtin_config.order=[vqa_shape,digits]", "prune.cap=60", f"score.shard_size={SHARD}",
        "eval.max_samples_per_task=4", "score.refresh=0.5"]


class CountingPool(Pool):
    """The real pool, recording (stage, rows) of every ``get``; reading every sample at once is an error."""

    def __init__(self, root):
        super().__init__(root)
        self.stage = None
        self.calls: list[tuple[tuple[int, str], int]] = []

    def samples(self, *args, **kwargs):
        raise AssertionError("the loop materialised the whole pool as Sample objects")

    def get(self, ids, status="active"):
        out = super().get(ids, status)
        self.calls.append((self.stage, len(out)))
        return out


class CountingRun(Run):
    def stage(self, t, name, fn, *args):
        self.pool.stage = (t, name)
        return super().stage(t, name, fn, *args)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = load_run_config(ROOT / "configs" / "smoke.yaml",
                          [f"runs_dir={tmp_path_factory.mktemp('runs')}", "name=scale", *ARGS])
    r = CountingRun(cfg)
    r.pool.close()
    r.pool = CountingPool(r.dir / "pool")
    r.run()
    return r


def _rows(run, t, stage):
    return [n for s, n in run.pool.calls if s == (t, stage)]


def test_scoring_and_pruning_fetch_one_shard_at_a_time(run):
    for t in (1, 2):
        rows = _rows(run, t, "score")
        scored = run.stage_info(t, "score")["n"]
        assert rows and max(rows) <= SHARD and sum(rows) == scored, (t, rows)
    assert run.stage_info(2, "score")["n"] == 40 + 20  # new + half of the old
    # round 2's pruning embeds the 80-sample pool with round 2's model, shard by shard too
    rows = _rows(run, 2, "prune")
    assert max(rows) <= SHARD and sum(rows) == 80
    assert run.stage_info(2, "prune")["pruned"] == 20 and run.pool.count() == 60


def test_only_the_last_rounds_scores_stay_on_disk(run):
    one, two = run.dir / "rounds/1/score", run.dir / "rounds/2/score"
    assert sorted(p.name for p in one.iterdir()) == ["done"]  # round 2's sources.json supersedes round 1's
    assert sorted(p.name for p in two.iterdir()) == ["columns", "done", "sources.json"]
    assert not (run.dir / "rounds/2/prune/embeddings.npy").exists()
    scores = stages.scores(run, 2)
    assert len(scores.ids) == 80 and isinstance(scores.sketches, np.memmap)
    with pytest.raises(FileNotFoundError, match="round 1's scores are gone"):
        stages.scores(run, 1)


def test_an_earlier_rounds_scores_table_keeps_only_its_selected_rows(run):
    import pyarrow.parquet as pq

    one, two = (pq.read_table(run.dir / f"rounds/{t}/select/scores.parquet") for t in (1, 2))
    sel1 = json.loads((run.dir / "rounds/1/select/selection.json").read_text())["ids"]
    assert sorted(one.column("id").to_pylist()) == sorted(sel1)
    assert all(one.column("selected").to_pylist()) and one.num_rows == len(sel1) == 20
    assert two.num_rows == 80 and sum(two.column("selected").to_pylist()) == 40  # the latest stays whole
    assert {"cluster", "routed_expert", "score_ppl"} <= set(one.column_names)


def test_earlier_rounds_prune_records_are_compressed_and_still_read(run):
    from lifelong.export.lineage import round_files

    one, two = run.dir / "rounds/1/prune", run.dir / "rounds/2/prune"
    assert sorted(p.name for p in one.iterdir()) == ["done", "pruned.json.gz"]  # round 2's report packed it
    assert (two / "pruned.json").is_file()  # the last round's stays as the loop wrote it
    assert round_files(run.dir, 1)["prune"] == {"round": 1, "cap": 60, "pool_size": 40, "records": []}
    assert len(round_files(run.dir, 2)["prune"]["records"]) == 20


def test_pruned_conversations_leave_the_manifest(run):
    led = run.pool.ledger()
    assert len(led) == 20 and all(r["content_key"] and r["round"] == 2 for r in led)
    n = run.pool.db.execute("SELECT COUNT(*) FROM samples WHERE status='pruned' AND conversation IS NOT NULL")
    assert n.fetchone()[0] == 0


def test_a_report_reads_only_its_own_rounds_selection(run, tmp_path):
    from lifelong.config import to_dict
    from lifelong.evaluation.history import load_history
    from lifelong.evaluation.reporting import build_history

    saved = load_history(run.dir)
    assert [r.round for r in saved.rounds] == [1, 2] and saved.rounds[0].selected == 20
    copy = tmp_path / "copy"
    shutil.copytree(run.dir, copy)
    (copy / "rounds/1/select/selection.json").write_text("not json")  # round 1's report already ran
    tasks, name, strategy = [e.name for e in run.entries()], run.cfg.name, run.cfg.select.strategy
    # The report passes the run's task columns (reporting.run_columns); the saved history records them.
    again = build_history(RunLayout(copy), 2, tasks, name, strategy, previous=load_history(copy),
                          columns=saved.columns)
    assert to_dict(again) == to_dict(saved)
    with pytest.raises(json.JSONDecodeError):
        build_history(RunLayout(copy), 2, tasks, name, strategy)  # without the saved history every round is read again
