"""A round's scores as one memory-mapped column store: shards copied in, rows gathered forward."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from lifelong.selection import score_store
from lifelong.selection.score import ScoreResult, gather_scores, load_scores
from lifelong.selection.score_store import consolidate, is_complete, open_scores, remove_store


def _write_shards(d, n, S, sketch=True, experts=("ppl", "el2n")):
    """Shards of a pass over ids x0..x{n-1}: row i has sketch i, embed -i, ppl 10 i, el2n -i/2."""
    d.mkdir(parents=True)
    for i in range(-(-n // S)):
        rows = np.arange(i * S, min(n, (i + 1) * S))
        t = {"embed": torch.tensor(-rows[:, None] * np.ones((1, 3)), dtype=torch.float16)}
        if sketch:
            t["sketch"] = torch.tensor(rows[:, None] * np.ones((1, 4)), dtype=torch.float16)
        if "ppl" in experts:
            t["score.ppl"] = torch.tensor(10.0 * rows, dtype=torch.float64)
        if "el2n" in experts:
            t["score.el2n"] = torch.tensor(-rows / 2, dtype=torch.float64)
        save_file(t, d / f"shard_{i:05d}.safetensors", metadata={"ids": json.dumps([f"x{j}" for j in rows])})
        (d / f"shard_{i:05d}.done").touch()
    (d / "experts.json").write_text(json.dumps({"experts": list(experts), "sketches": sketch}))


def test_consolidated_columns_are_memmaps_with_every_row_in_place(tmp_path):
    _write_shards(tmp_path / "shards", 11, 4)
    res = consolidate(tmp_path / "shards", 11, 4, tmp_path / "columns")
    assert is_complete(tmp_path / "columns") and not (tmp_path / "columns.tmp").exists()
    assert sorted(p.name for p in (tmp_path / "columns").iterdir()) == [
        "embed.npy", "ids.json", "meta.json", "score.el2n.npy", "score.ppl.npy", "sketch.npy"]
    again = open_scores(tmp_path / "columns")
    for r in (res, again):
        assert r.ids == [f"x{i}" for i in range(11)]
        assert isinstance(r.sketches, np.memmap) and isinstance(r.embeddings, np.memmap)
        assert all(isinstance(v, np.memmap) for v in r.scores.values()) and list(r.scores) == ["ppl", "el2n"]
        assert r.sketches.dtype == np.float16 and r.sketches.shape == (11, 4)
        np.testing.assert_array_equal(r.sketches[:, 0], np.arange(11))
        np.testing.assert_array_equal(r.embeddings[7:9, 2], [-7, -8])  # a row range
        np.testing.assert_array_equal(r.scores["ppl"], 10.0 * np.arange(11))
        np.testing.assert_array_equal(r.scores["el2n"], -np.arange(11) / 2)
    # the in-memory reader gives the same arrays (one copy, no concatenation)
    mem = load_scores(tmp_path / "shards", 11, 4)
    assert not isinstance(mem.sketches, np.memmap)
    np.testing.assert_array_equal(mem.sketches, res.sketches)
    np.testing.assert_array_equal(mem.scores["ppl"], res.scores["ppl"])
    remove_store(tmp_path / "columns")
    assert not (tmp_path / "columns").exists()


def test_consolidation_refuses_a_missing_shard_and_mixed_sketches(tmp_path):
    _write_shards(tmp_path / "a", 11, 4)
    (tmp_path / "a" / "shard_00001.done").unlink()
    with pytest.raises(FileNotFoundError, match="shard 1 is not done"):
        consolidate(tmp_path / "a", 11, 4, tmp_path / "ca")
    assert not is_complete(tmp_path / "ca")  # nothing half-written is taken for a store
    _write_shards(tmp_path / "b", 8, 4)
    _write_shards(tmp_path / "c", 8, 4, sketch=False)
    (tmp_path / "c" / "shard_00001.safetensors").replace(tmp_path / "b" / "shard_00001.safetensors")
    with pytest.raises(ValueError, match="some scoring shards have sketches"):
        consolidate(tmp_path / "b", 8, 4)


@pytest.mark.parametrize("block", [2, 65536])
def test_gathering_onto_disk_equals_gathering_in_memory(tmp_path, monkeypatch, block):
    monkeypatch.setattr(score_store, "COPY_ROWS", block)
    _write_shards(tmp_path / "s1", 9, 4)
    _write_shards(tmp_path / "s3", 5, 4)
    one = consolidate(tmp_path / "s1", 9, 4, tmp_path / "r1")
    consolidate(tmp_path / "s3", 5, 4, tmp_path / "r3")
    three = open_scores(tmp_path / "r3")
    ids = ["x2", "x7", "x0", "x4", "x8", "x1"]
    src = {"x2": 3, "x7": 1, "x0": 1, "x4": 3, "x8": 1, "x1": 1}
    stores = {1: one, 3: three}
    mem = gather_scores(ids, src, stores.__getitem__)
    disk = gather_scores(ids, src, stores.__getitem__, tmp_path / "g")
    assert isinstance(disk.sketches, np.memmap) and disk.ids == ids
    # by hand: round-3 rows are x0..x4 of its own pass, round-1 rows x0..x8 of round 1's
    np.testing.assert_array_equal(disk.scores["ppl"], [20, 70, 0, 40, 80, 10])
    for a, b in [(mem.sketches, disk.sketches), (mem.embeddings, disk.embeddings),
                 (mem.scores["el2n"], disk.scores["el2n"])]:
        np.testing.assert_array_equal(a, b)
    assert json.loads((tmp_path / "g/meta.json").read_text())["gathered"] == [1, 3]


def test_gather_drops_an_expert_one_store_lacks(tmp_path, capsys):
    _write_shards(tmp_path / "a", 4, 4)
    _write_shards(tmp_path / "b", 4, 4, experts=("ppl",))
    a, b = consolidate(tmp_path / "a", 4, 4, tmp_path / "ca"), consolidate(tmp_path / "b", 4, 4, tmp_path / "cb")
    out = gather_scores(["x0", "x1"], {"x0": 1, "x1": 2}, {1: a, 2: b}.__getitem__, tmp_path / "g")
    assert list(out.scores) == ["ppl"] and "['el2n'] are missing" in capsys.readouterr().out
    assert isinstance(out, ScoreResult)
