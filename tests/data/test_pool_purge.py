"""Pruned rows leave the manifest once their round's data card is written; a kill at any point
of the purge or of the VACUUM after it leaves a consistent pool on a real SQLite file."""
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lifelong.data.pool import Pool, PruneRecord
from lifelong.data.sample import Sample

ROOT = Path(__file__).resolve().parents[2]
N = 1200


def _sample(i: int) -> Sample:
    # Sizes like the built-in stream's: a short conversation, ~300 bytes of provenance.
    return Sample(id=f"count/train/c-{i:06d}", dataset="count", task="count", split="train", images=[],
                  conversation=[{"role": "user", "content": f"How many circles are there? ({i})"},
                                {"role": "assistant", "content": str(i % 7)}],
                  provenance={"dataset": "count", "generator": "lifelong.data.stream", "seed": 0,
                              "source": "generated", "source_id": f"c-{i:06d}", "duplicate_of": None,
                              "noise": None, "truth": {"objects": [{"cx": i % 50, "cy": 7, "r": 5}] * 2}})


def _fill(pool: Pool, ids) -> None:
    ing = pool.new_ingest("src", "llava", "count", "train", 1)
    with pool.transaction():
        for i in ids:
            s = _sample(i)
            assert pool.insert(s, s.content_key(), 1, ing)


def _pruned_pool(root: Path) -> list[int]:
    """N samples, three quarters pruned in round 2; returns the kept indices."""
    with Pool(root) as pool:
        _fill(pool, range(N))
        pool.prune([PruneRecord(_sample(i).id, 2, "semdedup", cluster=i % 5, max_sim=0.9) for i in range(N)
                    if i % 4])
        pool.compact()
    return [i for i in range(N) if i % 4 == 0]


def test_purge_keeps_the_active_pool_and_the_ledger_and_gives_the_rows_back(tmp_path):
    kept = _pruned_pool(tmp_path / "p")
    with Pool(tmp_path / "ref") as ref:  # the same active samples, never any pruning
        _fill(ref, kept)
        ref.compact(min_fraction=0.0)
        active_only = ref.file_bytes()
    with Pool(tmp_path / "p") as pool:
        pool.compact(min_fraction=0.0)
        before = pool.file_bytes()
        assert pool.purge(before_round=2) == 0  # round 2's card is not written yet: its rows stay
        assert pool.count(status="pruned") == N - len(kept)
        assert pool.purge(before_round=3) == N - len(kept)
        assert pool.purge(before_round=3) == 0  # idempotent
        assert pool.compact() is True
        after = pool.file_bytes()
        per_row_before = (before - active_only) / (N - len(kept))
        per_row_after = (after - active_only) / (N - len(kept))
        # A purged sample is one ledger row (id 19 + hash 64 + round, cluster, max-sim, reason ~20 bytes)
        # and its two ledger index entries (id, hash): ~250 bytes; with the samples row and its four
        # index entries (~330 bytes of provenance, id, hash, names) it was more than twice that.
        assert per_row_after < 300 < 2 * per_row_after < per_row_before, (per_row_before, per_row_after)
        assert pool.count(status=None) == len(kept) and pool.check() == []
        assert pool.get([_sample(i).id for i in kept]) == [_sample(i) for i in kept]
        led = pool.ledger()
        assert len(led) == N - len(kept) and led[0] == {"sample_id": _sample(1).id,
                                                        "content_key": _sample(1).content_key(), "round": 2,
                                                        "cluster": 1, "max_sim": pytest.approx(0.9),
                                                        "reason": "semdedup", "duplicate_of": None}
        # A purged sample never comes back: by id or by content.
        gone = _sample(1)
        assert pool.lookup(gone.id) == (gone.content_key(), "pruned")
        assert pool.has_content(gone.content_key())
        with pool.transaction():
            assert pool.insert(gone, gone.content_key(), 5, 1) is False
        assert pool.lookup("never/there") is None and not pool.has_content("0" * 64)
        # Purged rows still count as pruned (pool stats counts every round's pruning).
        assert [(r["status"], r["count"]) for r in pool.stats()] == [("active", len(kept)), ("pruned", N - len(kept))]


CHILD = textwrap.dedent("""
    import os, sys
    from lifelong.data.pool import Pool
    pool = Pool(sys.argv[1])
    kill_at, calls = int(sys.argv[2]), [0]
    def tick():
        calls[0] += 1
        if calls[0] == kill_at:
            os._exit(9)  # as abrupt as SIGKILL: no rollback, no close
        return 0
    pool.db.set_progress_handler(tick, 200)
    n = pool.purge(before_round=3)
    vacuumed = pool.compact(min_fraction=0.0)
    print(calls[0], n, vacuumed)
""")


def _child(root: Path, kill_at: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, str(root), str(kill_at)], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT)}, timeout=120)


def test_a_kill_anywhere_in_purge_and_vacuum_leaves_a_consistent_pool(tmp_path):
    template = tmp_path / "template"
    kept = _pruned_pool(template)
    # An uninterrupted run counts the progress ticks, so the kills land at spread-out points.
    shutil.copytree(template, tmp_path / "dry")
    full = _child(tmp_path / "dry", -1)
    assert full.returncode == 0, full.stderr
    ticks, n, vacuumed = full.stdout.split()
    assert int(n) == N - len(kept) and vacuumed == "True" and int(ticks) > 20
    outcomes = set()
    for frac in (0.1, 0.4, 0.7, 0.8, 0.9, 0.97):
        root = tmp_path / f"kill{frac}"
        shutil.copytree(template, root)
        res = _child(root, max(1, int(frac * int(ticks))))
        assert res.returncode == 9, (frac, res.stdout, res.stderr)
        with Pool(root) as pool:
            assert pool.check() == [] and pool.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert pool.get([_sample(i).id for i in kept]) == [_sample(i) for i in kept]  # nothing active lost
            assert len(pool.ledger()) == N - len(kept)
            left = pool.count(status="pruned")
            assert left in (0, N - len(kept)), left  # the purge is all or nothing
            outcomes.add(left)
            # A re-run finishes the job.
            assert pool.purge(before_round=3) == left
            pool.compact(min_fraction=0.0)
            assert pool.count(status=None) == len(kept) and pool.check() == []
    assert outcomes == {0, N - len(kept)}  # some kills hit the purge, some the VACUUM after it
