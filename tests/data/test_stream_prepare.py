"""The built-in stream on disk: determinism, format, injected rates, cards, ingestion."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import yaml

from lifelong.config import load_config
from lifelong.data.stream import DATASETS, StreamConfig, main, prepare_stream, read_manifest
from lifelong.data.stream.cards import render_card
from lifelong.data.stream.prepare import content_digest, stream_digest

REPO = Path(__file__).resolve().parents[2]
SEED = 5


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stream")
    prepare_stream(out, scale="small", seed=SEED)
    return out


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_stream_digest_follows_the_data_and_ignores_the_cards(stream, tmp_path):
    """The comparison keys its results on this digest: a generator change must move it,
    a re-measured ceiling in a data card must not."""
    digest = stream_digest("small", SEED)
    assert digest == content_digest(stream)
    # Worked out independently: sha256 over (path, sha256(bytes)) of the non-card files.
    h = hashlib.sha256()
    for rel, data in sorted(tree(stream).items(), key=lambda kv: Path(kv[0]).as_posix()):
        if not rel.endswith(".md"):
            h.update(Path(rel).as_posix().encode() + b"\0" + hashlib.sha256(data).digest())
    assert digest == h.hexdigest()
    copy = tmp_path / "copy"
    prepare_stream(copy, scale="small", seed=SEED)
    (copy / "counting" / "README.md").write_text("ceiling re-measured\n", encoding="utf-8")
    assert content_digest(copy) == digest
    assert stream_digest("small", SEED, StreamConfig(max_count=3)) != digest
    assert stream_digest("small", SEED + 1) != digest


def load(stream: Path, name: str, split: str) -> list[dict]:
    return json.loads((stream / name / f"{split}.json").read_text(encoding="utf-8"))


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(stream, tmp_path):
    again = tmp_path / "again"
    prepare_stream(again, scale="small", seed=SEED)
    a, b = tree(stream), tree(again)
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
    other = tmp_path / "other"
    prepare_stream(other, scale="small", seed=SEED + 1, datasets=["counting"])
    assert (other / "counting" / "train.json").read_bytes() != a["counting/train.json"]


def test_a_subset_of_datasets_gives_the_same_files(stream, tmp_path):
    prepare_stream(tmp_path, scale="small", seed=SEED, datasets=["compare", "digits"])
    full = tree(stream)
    for rel, data in tree(tmp_path).items():
        if rel != "stream.json":
            assert full[rel] == data, rel
    assert [d.name for d in read_manifest(tmp_path)] == ["compare", "digits"]


def test_manifest_lists_the_configured_order_with_paths_and_metric(stream):
    cfg = StreamConfig()
    infos = read_manifest(stream)
    assert [i.name for i in infos] == cfg.order
    assert [i.order for i in infos] == list(range(len(cfg.order)))
    manifest = json.loads((stream / "stream.json").read_text())
    assert (manifest["scale"], manifest["seed"], manifest["format"]) == ("small", SEED, "llava_json")
    for info in infos:
        assert info.metric == "exact_match"
        assert len(load(stream, info.name, "train")) == info.n_train == cfg.sizes("small").train
        assert len(load(stream, info.name, "test")) == info.n_test == cfg.sizes("small").test
        assert (stream / info.train).is_file() and (stream / info.test).is_file() and (stream / info.card).is_file()


def test_records_are_llava_with_short_answers_and_existing_images(stream):
    for info in read_manifest(stream):
        ids = set()
        for split in ("train", "test"):
            for rec in load(stream, info.name, split):
                assert rec["id"] not in ids
                ids.add(rec["id"])
                assert rec["task"] == info.name
                human, gpt = rec["conversations"]
                assert (human["from"], gpt["from"]) == ("human", "gpt")
                assert len(gpt["value"].split()) == 1 and gpt["value"] == gpt["value"].strip()
                if info.has_images:
                    assert human["value"].startswith("<image>\n") and human["value"].count("<image>") == 1
                    assert (stream / info.name / rec["image"]).is_file()
                    assert rec["image"].startswith("images/")
                else:
                    assert "image" not in rec and "<image>" not in human["value"]
                    assert not (stream / info.name / "images").exists()
        # Every image file belongs to a record.
        if info.has_images:
            used = {r["image"] for s in ("train", "test") for r in load(stream, info.name, s)}
            assert {f"images/{p.name}" for p in (stream / info.name / "images").iterdir()} == used


def _half_up(x: float) -> int:
    return math.floor(x + 0.5)


def test_injected_rates_are_exact_and_test_splits_are_clean(stream):
    cfg = StreamConfig()
    n = cfg.sizes("small").train
    for info in read_manifest(stream):
        train = load(stream, info.name, "train")
        prov = [r["provenance"] for r in train]
        dups = [p for p in prov if p["duplicate_of"] is not None]
        mis = [p for p in prov if p["noise"] == "mislabeled"]
        ung = [p for p in prov if p["noise"] == "ungrounded"]
        assert len(dups) == info.n_duplicates == _half_up(cfg.duplicate_rate * n)
        assert len(mis) == info.n_mislabeled == _half_up(cfg.mislabel_rate * n)
        expected_ung = _half_up(cfg.ungrounded_rate * n) if info.has_images else 0
        assert len(ung) == info.n_ungrounded == expected_ung
        assert all(p["noise"] is None for p in dups)  # a duplicate is a clean copy
        for p in mis:
            assert p["true_answer"] != next(r for r in train if r["provenance"] is p)["conversations"][1]["value"]
        for rec in load(stream, info.name, "test"):
            assert rec["provenance"]["noise"] is None and rec["provenance"]["duplicate_of"] is None


def _image_digest(stream: Path, name: str, rec: dict) -> str | None:
    return hashlib.sha256((stream / name / rec["image"]).read_bytes()).hexdigest() if "image" in rec else None


def test_near_duplicates_copy_a_clean_record_with_a_small_jitter(stream):
    from PIL import Image
    import numpy as np

    for info in read_manifest(stream):
        train = {r["id"]: r for r in load(stream, info.name, "train")}
        for rec in train.values():
            src_id = rec["provenance"]["duplicate_of"]
            if src_id is None:
                continue
            src = train[src_id]
            assert src["provenance"]["noise"] is None and src["provenance"]["duplicate_of"] is None
            assert src["conversations"][1] == rec["conversations"][1]
            if info.has_images:
                assert src["conversations"][0] == rec["conversations"][0]
                a, b = (np.asarray(Image.open(stream / info.name / r["image"])).astype(int) for r in (rec, src))
                assert not np.array_equal(a, b)
                # Same content: undoing the recorded shift gives the source's interior back.
                dy, dx = rec["provenance"]["jitter"]["shift_px"]
                assert np.array_equal(a[1 + dy : 63 + dy, 1 + dx : 63 + dx], b[1:63, 1:63])
            else:
                assert src["conversations"][0] != rec["conversations"][0]  # reworded


def test_no_test_content_in_train_and_no_accidental_duplicates(stream):
    for info in read_manifest(stream):
        def content(split):
            return [(r["conversations"][0]["value"], _image_digest(stream, info.name, r)) for r in load(stream, info.name, split)]

        train, test = content("train"), content("test")
        assert not set(train) & set(test), info.name
        assert len(set(test)) == len(test)
        assert len(set(train)) == len(train)  # near-duplicates differ by their jitter


def test_repo_data_cards_equal_the_generated_full_scale_cards():
    cfg = StreamConfig()
    for name, spec in DATASETS.items():
        path = REPO / "data_cards" / f"{name}.md"
        assert path.read_text(encoding="utf-8") == render_card(spec, cfg, "full"), (
            f"{path} is stale: regenerate with `python -c \"from lifelong.data.stream import main; "
            f"main(['--out', 'data_cards', '--cards-only'])\"`"
        )
    assert {p.stem for p in (REPO / "data_cards").glob("*.md")} >= set(DATASETS)


def test_prepared_cards_have_hugging_face_front_matter(stream):
    cfg = StreamConfig()
    for info in read_manifest(stream):
        text = (stream / info.card).read_text(encoding="utf-8")
        assert text == render_card(DATASETS[info.name], cfg, "small")
        front = yaml.safe_load(text.split("---\n")[1])
        for key in ("license", "task_categories", "size_categories", "source_datasets", "pretty_name"):
            assert front[key], key
        splits = {s["name"]: s["num_examples"] for s in front["dataset_info"]["splits"]}
        assert splits == {"train": info.n_train, "test": info.n_test}
        assert f"| full | {cfg.sizes('full').train} |" in text


def test_config_overrides_and_main(tmp_path, capsys):
    cfg = load_config(StreamConfig, overrides=["small_train=20", "duplicate_rate=0.2"])
    assert cfg.sizes("small").train == 20 and cfg.sizes("small").test == StreamConfig().small_test
    assert main(["--out", str(tmp_path), "--datasets", "spatial", "--set", "small_train=20",
                 "--set", "small_test=4", "--set", "duplicate_rate=0.2"]) == 0
    (info,) = read_manifest(tmp_path)
    assert (info.n_train, info.n_test, info.n_duplicates) == (20, 4, 4)
    assert "spatial" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown scale"):
        prepare_stream(tmp_path, scale="huge")
    with pytest.raises(KeyError, match="unknown stream dataset"):
        prepare_stream(tmp_path, datasets=["nope"])


def test_full_scale_fits_the_sources():
    # digits has 1,797 images; the full scale must leave train and test disjoint.
    full = StreamConfig().sizes("full")
    assert full.train + full.test <= 1797


def test_ingesting_the_stream_quarantines_nothing(stream, tmp_path):
    from lifelong.data.ingest import IngestConfig, ingest
    from lifelong.data.pool import Pool

    with Pool(tmp_path / "pool") as pool:
        for info in read_manifest(stream):
            for split, rel, n in (("train", info.train, info.n_train), ("test", info.test, info.n_test)):
                report = ingest(pool, stream / rel, cfg=IngestConfig(progress=False))
                assert report.quarantined == [], report.summary()
                assert (report.dataset, report.split, report.added) == (info.name, split, n)
        assert pool.count(split="train") == sum(i.n_train for i in read_manifest(stream))
        (sample,) = pool.get(["compare/test/compare-test-00000"])
        assert sample.images == [] and sample.provenance["source_id"] == "compare-test-00000"


def test_a_validation_split_is_disjoint_and_leaves_the_rest_as_it_was(stream, tmp_path):
    """``held_out: val`` adds each dataset's val.json and offers it as its test split; train and
    test stay the records ``held_out: test`` writes, except category's train, which loses its
    validation words (the word after each test word)."""
    val_stream = tmp_path / "val"
    infos = prepare_stream(val_stream, scale="small", seed=SEED, cfg=StreamConfig(held_out="val"))
    before, after = tree(stream), tree(val_stream)
    n = StreamConfig().sizes("small").test
    for info in infos:
        assert (info.test, info.n_test) == (f"{info.name}/val.json", n)
        assert after[f"{info.name}/test.json"] == before[f"{info.name}/test.json"]
        if info.name != "category":
            assert after[f"{info.name}/train.json"] == before[f"{info.name}/train.json"]
        val = load(val_stream, info.name, "val")
        assert len(val) == n
        assert all(r["provenance"]["noise"] is None and r["provenance"]["duplicate_of"] is None for r in val)
        assert all(r["id"].startswith(f"{info.name}-val-") for r in val)

        def content(split):
            return {(r["conversations"][0]["value"], _image_digest(val_stream, info.name, r))
                    for r in load(val_stream, info.name, split)}

        assert len(content("val")) == n
        assert not content("val") & (content("train") | content("test")), info.name
    assert {k for k in after if k not in before} == {
        p for i in infos for p in [f"{i.name}/val.json"] + [
            f"{i.name}/{r['image']}" for r in load(val_stream, i.name, "val") if "image" in r]}

    def words(split):
        return {r["provenance"]["word"] for r in load(val_stream, "category", split)}

    # 40 words of each kind in list order: index % 5 == 0 test, == 1 validation, the rest train.
    from lifelong.data.stream.generators.text import CATEGORIES
    val_words = {w for ws in CATEGORIES.values() for i, w in enumerate(ws) if i % 5 == 1}
    test_words = {w for ws in CATEGORIES.values() for i, w in enumerate(ws) if i % 5 == 0}
    assert words("val") <= val_words and words("test") <= test_words
    assert not words("train") & (val_words | test_words)
    # easy-vqa: validation questions come from the package's test split, whose images train never shows.
    for name in ("vqa_shape", "vqa_color"):
        def images(split):
            return {(r["provenance"]["source_split"], r["provenance"]["source_image_id"])
                    for r in load(val_stream, name, split)}
        assert {s for s, _ in images("val")} == {"test"}
        assert not images("val") & images("train")


def test_held_out_names_a_clean_split():
    with pytest.raises(ValueError, match="held_out must be test or val"):
        StreamConfig(held_out="dev")
    with pytest.raises(ValueError, match="messy.held_out"):
        StreamConfig(stream="messy", held_out="val")
