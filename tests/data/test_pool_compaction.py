"""The pool at scale: lazy sample views, pruned content leaving the file, the eval query's index."""
import sqlite3

import pytest

from lifelong.data.pool import Pool, PoolError, PruneRecord
from lifelong.data.sample import Sample


def _fill(pool: Pool, n: int, words: int = 200, split: str = "train", task: str = "t") -> list[str]:
    ing = pool.new_ingest("src", "llava", "d", split, 1)
    ids = []
    with pool.transaction():
        for i in range(n):
            s = Sample(id=f"{split}{i}", dataset="d", task=task, split=split, images=[],
                       conversation=[{"role": "user", "content": f"question {i} " + "word " * words},
                                     {"role": "assistant", "content": f"answer {i}"}])
            assert pool.insert(s, s.content_key(), 1, ing)
            ids.append(s.id)
    return ids


class CountingPool(Pool):
    """Records how many rows each ``get`` call fetched."""

    def __init__(self, root):
        super().__init__(root)
        self.calls: list[int] = []

    def get(self, ids, status="active"):
        out = super().get(ids, status)
        self.calls.append(len(out))
        return out


def test_a_view_fetches_only_the_rows_it_is_sliced_to(tmp_path):
    with CountingPool(tmp_path / "p") as pool:
        ids = _fill(pool, 50, words=2)
        view = pool.view(ids)
        assert len(view) == 50 and pool.calls == []  # nothing fetched to know its length
        part = view[10:14]
        assert [s.id for s in part] == ids[10:14] and pool.calls == [4]
        assert view[-1].id == ids[-1] and pool.calls == [4, 1]
        pool.prune([PruneRecord(ids[0], 2, "test")])
        with pytest.raises(PoolError, match="not active"):
            view[0:2]


def test_pruning_then_compacting_gives_the_content_back_and_keeps_the_ledger(tmp_path):
    with Pool(tmp_path / "p") as pool:
        ids = _fill(pool, 2000)
        pool.compact()  # nothing pruned: nothing to give back, no VACUUM
        assert pool.reclaimable_bytes() < 0.05 * pool.file_bytes()
        full = pool.file_bytes()
        content = pool.db.execute("SELECT SUM(LENGTH(conversation)) FROM samples").fetchone()[0]
        assert content > 0.6 * full  # the conversations are most of the file
        pruned = ids[::4] + ids[1::4] + ids[2::4]  # three quarters
        pool.prune([PruneRecord(x, 2, "semdedup_duplicate", cluster=3, max_sim=0.97) for x in pruned])
        assert pool.reclaimable_bytes() >= 0.7 * content  # counted, not yet given back
        assert pool.compact() is True
        after = pool.file_bytes()
        # three quarters of the content left the file (a quarter of it and the tombstones stay)
        assert after < full - 0.65 * content, (full, after, content)
        assert pool.reclaimable_bytes() < 0.05 * after
        assert pool.compact() is False  # nothing left worth a VACUUM
        assert pool.count() == 500 and pool.check() == []
        led = pool.ledger()
        assert len(led) == 1500 and led[0]["sample_id"] == ids[0] and led[0]["max_sim"] == pytest.approx(0.97)
        assert led[0]["cluster"] == 3 and led[0]["content_key"] and led[0]["reason"] == "semdedup_duplicate"
        assert pool.lookup(ids[0])[1] == "pruned"  # re-ingesting it stays a no-op
        assert [s.id for s in pool.get(ids[3::4][:3])] == ids[3::4][:3]
    # the file on disk is the small one (the WAL was checkpointed into it and truncated)
    assert (tmp_path / "p/pool.sqlite").stat().st_size <= after


def test_the_eval_query_uses_the_split_task_index(tmp_path):
    with Pool(tmp_path / "p") as pool:
        _fill(pool, 30, words=1)
        test_ids = _fill(pool, 7, words=1, split="test", task="count")
        assert pool.ids(status=None, split="test", task="count") == test_ids
        assert pool.ids(status=None, split="test", task="other") == []
        plan = " | ".join(r[-1] for r in pool.db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM samples WHERE split=? AND task=? ORDER BY rowid", ("test", "count")))
        assert "USING INDEX samples_split_task" in plan and "TEMP B-TREE" not in plan, plan
        assert [s.id for s in pool.get(test_ids, status=None)] == test_ids


def test_an_existing_manifest_gets_the_new_index_and_table_on_open(tmp_path):
    with Pool(tmp_path / "p") as pool:
        _fill(pool, 3, words=1)
    db = sqlite3.connect(tmp_path / "p/pool.sqlite")
    db.execute("DROP INDEX samples_split_task")
    db.execute("DROP TABLE meta")
    db.commit()
    db.close()
    with Pool(tmp_path / "p") as pool:
        names = {r[0] for r in pool.db.execute("SELECT name FROM sqlite_master")}
        assert {"samples_split_task", "meta"} <= names
        pool.prune([PruneRecord("train0", 2, "test")])
        assert pool.reclaimable_bytes() > 0
