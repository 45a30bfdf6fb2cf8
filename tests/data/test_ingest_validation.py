"""Ingesting a LLaVA JSON with good and bad records: exactly the good ones enter."""
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from lifelong.cli import main
from lifelong.data.ingest import ingest
from lifelong.data.pool import Pool


def _png(path: Path, color) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), color).save(path)


def _good(i: int) -> dict:
    rec = {
        "id": f"g{i}",
        "conversations": [
            {"from": "human", "value": f"Question {i}?" if i % 4 == 0 else f"<image>\nWhat color is square {i}?"},
            {"from": "gpt", "value": f"answer {i}"},
        ],
    }
    if i % 4 != 0:
        rec["image"] = f"images/{i}.png"
    return rec


@pytest.fixture
def dataset(tmp_path):
    """A LLaVA dataset folder with 20 good records and one bad record of each kind."""
    root = tmp_path / "shapes"
    for i in range(20):
        _png(root / "images" / f"{i}.png", (i * 10, 0, 0))
    # A truncated PNG, a non-image file and a file outside the root (reached by a symlink).
    good_bytes = (root / "images" / "1.png").read_bytes()
    (root / "images" / "trunc.png").write_bytes(good_bytes[: len(good_bytes) // 2])
    (root / "images" / "notimage.png").write_text("hello")
    _png(tmp_path / "outside.png", (0, 255, 0))
    os.symlink(tmp_path / "outside.png", root / "images" / "link.png")

    def bad(rid, **kw):
        rec = {"id": rid, "conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "A"}],
               "image": "images/1.png"}
        rec.update(kw)
        return rec

    bad_records = {
        "missing image": bad("b_missing", image="images/nope.png"),
        "truncated image": bad("b_trunc", image="images/trunc.png"),
        "unreadable image": bad("b_notimage", image="images/notimage.png"),
        "token count": bad("b_tokens", image=["images/1.png", "images/2.png"]),
        "empty conversation": bad("b_empty", conversations=[]),
        "one-sided": bad("b_onesided", conversations=[{"from": "human", "value": "<image>\nQ?"}]),
        "unknown role": bad("b_role", conversations=[{"from": "robot", "value": "<image>\nQ?"},
                                                     {"from": "gpt", "value": "A"}]),
        "duplicate id": bad("g3"),
        "dotdot path": bad("b_dotdot", image="../outside.png"),
        "absolute path": bad("b_abs", image=str(tmp_path / "outside.png")),
        "symlink out": bad("b_symlink", image="images/link.png"),
        "oversized text": bad("b_big", conversations=[{"from": "human", "value": "<image>\n" + "x" * 40_000},
                                                    {"from": "gpt", "value": "A"}]),
        "not an object": "just a string",
    }
    records = [_good(i) for i in range(20)]
    for j, rec in enumerate(bad_records.values()):
        records.insert(2 * j + 1, rec)
    text = json.dumps(records, indent=2)
    # Two kinds that only exist as bytes: a syntax error and non-UTF-8 text.
    text = text[:-1] + ',\n  {"id": "b_syntax", "conversations": [,]},\n' + \
        '  {"id": "b_utf8", "conversations": [{"from": "human", "value": "Q\u00ff?"}, {"from": "gpt", "value": "A"}]}\n]'
    data = text.encode("utf-8").replace("Q\u00ff?".encode("utf-8"), b"Q\xff?")
    (root / "train.json").write_bytes(data)
    expected_bad = len(bad_records) + 2
    return root, expected_bad


def test_good_records_in_bad_ones_quarantined_with_reasons(dataset, tmp_path):
    root, expected_bad = dataset
    pool = Pool(tmp_path / "pool")
    rep = ingest(pool, root / "train.json")
    assert rep.added == 20
    assert len(rep.quarantined) == expected_bad >= 15
    assert sorted(s.provenance["source_id"] for s in pool.samples()) == sorted(f"g{i}" for i in range(20))
    reasons = {q["id"]: q["reason"] for q in rep.quarantined}
    assert "does not exist" in reasons["b_missing"]
    assert "unreadable or truncated" in reasons["b_trunc"]
    assert "unreadable or truncated" in reasons["b_notimage"]
    assert "2 image(s) but 1 <image> token(s)" in reasons["b_tokens"]
    assert reasons["b_empty"] == "empty conversation"
    assert "one-sided" in reasons["b_onesided"]
    assert "unknown role 'robot'" in reasons["b_role"]
    assert "duplicate id 'g3'" in reasons["g3"]
    assert "escapes the dataset root" in reasons["b_dotdot"]
    assert "is absolute" in reasons["b_abs"]
    assert "outside the dataset root" in reasons["b_symlink"]
    assert "exceeds the limit" in reasons["b_big"]
    assert "not an object" in reasons[None] or any("not an object" in q["reason"] for q in rep.quarantined)
    assert any("malformed JSON" in q["reason"] for q in rep.quarantined)
    assert any("not valid UTF-8" in q["reason"] for q in rep.quarantined)
    # The report on disk names every bad record with its reason.
    lines = [json.loads(x) for x in rep.quarantine_path.read_text().splitlines()]
    assert len(lines) == expected_bad
    assert all(x["reason"] for x in lines)
    # Image samples own a copy of their image; text-only ones have none.
    for s in pool.samples():
        n = int(s.provenance["source_id"][1:])
        assert len(s.images) == (0 if n % 4 == 0 else 1)
        if s.images:
            assert pool.load_image(s.images[0]).getpixel((0, 0)) == (n * 10, 0, 0)
    assert pool.check() == []

    # Re-ingesting changes nothing.
    before = pool.stats()
    rep2 = ingest(pool, root / "train.json")
    assert (rep2.added, rep2.unchanged, len(rep2.quarantined)) == (0, 20, expected_bad)
    assert pool.stats() == before


def test_pool_owns_images_after_source_is_gone(dataset, tmp_path):
    root, _ = dataset
    pool = Pool(tmp_path / "pool")
    ingest(pool, root / "train.json")
    import shutil

    shutil.rmtree(root)
    imgs = [s for s in pool.samples() if s.images]
    assert len(imgs) == 15
    assert all(pool.load_image(s.images[0]).size == (16, 16) for s in imgs)


def test_same_id_with_new_content_is_refused(dataset, tmp_path):
    root, _ = dataset
    pool = Pool(tmp_path / "pool")
    ingest(pool, root / "train.json")
    changed = [_good(5)]
    changed[0]["conversations"][1]["value"] = "a different answer"
    (root / "train.json").write_text(json.dumps(changed))
    rep = ingest(pool, root / "train.json")
    assert rep.added == 0
    assert "already in the pool with different content" in rep.quarantined[0]["reason"]
    assert pool.count() == 20


def test_cli_ingest_and_stats(dataset, tmp_path, capsys):
    root, expected_bad = dataset
    assert main(["ingest", str(root), "--pool", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert f"shapes/train: 20 added, 0 already in pool, {expected_bad} quarantined" in out
    assert main(["pool", "stats", "--pool", str(tmp_path / "p"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"dataset": "shapes", "task": "shapes", "split": "train", "status": "active", "count": 20}]


def test_messages_jsonl_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "chat"
    _png(root / "a.png", (1, 2, 3))
    recs = [
        {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]},
                      {"role": "assistant", "content": [{"type": "text", "text": "a square"}]}],
         "images": ["a.png"]},
        {"messages": [{"role": "user", "content": "<image>Colour?"}, {"role": "assistant", "content": "red"}],
         "images": [{"bytes": (root / "a.png").read_bytes(), "path": None}]},
        {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "images": []},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}], "images": []},
    ]
    (root / "train.jsonl").write_text("\n".join(json.dumps(r) for r in recs[:1] + recs[2:]) + "\n{oops\n")
    pool = Pool(tmp_path / "pool")
    rep = ingest(pool, root / "train.jsonl")
    assert (rep.added, len(rep.quarantined)) == (2, 2)
    assert {q["line"] for q in rep.quarantined} == {3, 4}
    s = pool.samples(dataset="chat")[0]
    assert s.conversation[0]["content"] == "<image>\nWhat is it?"
    pq.write_table(pa.Table.from_pylist(recs[1:3]), root / "more.parquet")
    rep = ingest(pool, root / "more.parquet", dataset="chat")
    # Records without ids are named by content: the parquet text sample is the
    # JSONL one again (stored once), the image sample is new.
    assert (rep.added, rep.unchanged, len(rep.quarantined)) == (1, 1, 0)
    assert pool.count(dataset="chat") == 3


def test_streaming_reader_is_chunk_size_independent(dataset, tmp_path, monkeypatch):
    """The JSON-array reader gives the same result when records straddle chunks."""
    import lifelong.data.readers as readers

    root, expected_bad = dataset
    monkeypatch.setattr(readers, "CHUNK_BYTES", 7)
    rep = ingest(Pool(tmp_path / "small_chunks"), root / "train.json")
    assert (rep.added, len(rep.quarantined)) == (20, expected_bad)
