"""The messy built-in stream: defect rates at full scale, clean and disjoint held-out splits,
determinism, cards, ingestion; and the clean stream's data unchanged."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lifelong.data.stream import StreamConfig, prepare_stream, read_manifest
from lifelong.data.stream.defects import DEFECTS
from lifelong.data.stream.generators.vqa import EVQA_SHAPES
from lifelong.data.stream.messy.compose import MESSY_DATASETS
from lifelong.data.stream.messy.config import MessyConfig
from lifelong.data.stream.prepare import content_digest, stream_digest

REPO = Path(__file__).resolve().parents[2]
MESSY = StreamConfig(stream="messy")
TOLERANCE = 0.02  # flagged rates within 2 points of the spec


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("messy_full")
    prepare_stream(out, "full", 0, cfg=MESSY)
    return out


def load(root: Path, name: str, split: str) -> list[dict]:
    return json.loads((root / name / f"{split}.json").read_text())


def image_digest(root: Path, name: str, rec: dict) -> str | None:
    return hashlib.sha256((root / name / rec["image"]).read_bytes()).hexdigest() if "image" in rec else None


def question(rec: dict) -> str:
    return rec["conversations"][0]["value"]


def rate(records: list[dict], kind: str) -> float:
    return sum(r["provenance"]["defect"] == kind for r in records) / len(records)


def test_clean_stream_data_is_unchanged():
    """The clean stream's bytes at the tests' and the demo's settings, as before the messy stream."""
    assert stream_digest("small", 0) == "907ccad0186078de8d7d3d225f3d157d7fe9882bcbe131162b5b112d04a5c184"
    demo = StreamConfig(full_train=300, full_test=60)
    assert stream_digest("full", 0, demo) == "de261db5d8c3f48882485c5d7d3d1881f245691dbc88987fe28787ba89a8923f"


def test_manifest_lists_six_datasets_with_train_val_test(full):
    infos = read_manifest(full)
    assert [i.name for i in infos] == list(MESSY_DATASETS)
    m = MessyConfig()
    assert [i.n_train for i in infos] == [m.train_size(i.name, "full") for i in infos]
    assert sum(i.n_train for i in infos) <= 7 * 300  # no more than the clean demo stream
    for i in infos:
        assert i.test == f"{i.name}/test.json" and i.val == f"{i.name}/val.json"
        assert len(load(full, i.name, "train")) == i.n_train


def test_defect_rates_at_full_scale_are_within_two_points_of_the_spec(full):
    m = MessyConfig()
    train = {n: load(full, n, "train") for n in MESSY_DATASETS}
    specs = [("templated", "near_copy", m.near_copy_rate), ("noisy", "wrong_label", m.wrong_label_rate),
             ("noisy", "swapped_image", m.swapped_image_rate), ("duplicates", "near_copy", m.copy_rate),
             ("small_tasks", "irrelevant_image", m.irrelevant_image_rate)]
    for name, kind, spec in specs:
        assert abs(rate(train[name], kind) - spec) <= TOLERANCE, (name, kind)
    for name in ("reuse", "rare"):
        assert rate(train[name], None) == 1.0  # no defects
    # The noisy dataset: one answer in half the records; its excess over the others' mean is flagged.
    noisy = train["noisy"]
    answers = Counter(r["conversations"][1]["value"] for r in noisy)
    dominant, n_dom = answers.most_common(1)[0]
    assert abs(n_dom / len(noisy) - m.dominant_share) <= TOLERANCE
    flagged = [r for r in noisy if r["provenance"]["defect"] == "dominant_answer"]
    assert {r["conversations"][1]["value"] for r in flagged} == {dominant}
    clean_others = sum(r["provenance"]["defect"] is None and r["conversations"][1]["value"] != dominant
                       for r in noisy)
    assert len(flagged) == n_dom - round(clean_others / (len(EVQA_SHAPES) - 1))  # the noisy dataset asks shapes
    # The M3IT-like mixture re-asks earlier images: image_of, no defect, answered with the property asked.
    reused = [r for r in train["reuse"] if r["provenance"]["image_of"]]
    field = {"vqa_color": "color", "vqa_shape": "shape"}
    assert reused and all(r["conversations"][1]["value"] == r["provenance"]["truth"][field[r["task"]]] for r in reused)
    assert abs(len(reused) / len(train["reuse"]) - m.reuse_rate) <= TOLERANCE
    # The duplicate-heavy dataset copies a few sources.
    groups = {r["provenance"]["group"] for r in train["duplicates"] if r["provenance"]["defect"] == "near_copy"}
    assert len(groups) == m.copy_sources


def test_every_defect_is_what_its_flag_says(full):
    order = list(MESSY_DATASETS)
    images = {}  # record id -> image digest, over every train split
    records = {}
    for n in MESSY_DATASETS:
        for r in load(full, n, "train"):
            records[r["id"]] = (n, r)
            images[r["id"]] = image_digest(full, n, r)
    for rid, (n, r) in records.items():
        p = r["provenance"]
        assert p["defect"] in (None, *DEFECTS)
        answer = r["conversations"][1]["value"]
        if p["defect"] == "wrong_label":
            assert answer != p["true_answer"]
        else:
            assert answer == p["true_answer"]
        if p["defect"] in ("swapped_image", "irrelevant_image"):
            assert p["image_of"]
        if p["image_of"]:  # the image of a clean record of another task, in an earlier dataset
            src_dataset, src = records[p["image_of"]]
            assert order.index(src_dataset) < order.index(n)
            assert images[rid] == images[p["image_of"]] and src["task"] != r["task"]
            assert src["provenance"]["defect"] is None
            assert p["defect"] in ("swapped_image", "irrelevant_image") or n == "reuse"
        if p["defect"] == "near_copy":
            members = [x for _, x in records.values() if x["provenance"]["group"] == p["group"]]
            sources = [x for x in members if x["provenance"]["defect"] is None]
            assert len(sources) == 1  # the copied record, kept clean
            assert sources[0]["provenance"]["truth"] == p["truth"]
            assert images[rid] is None or images[rid] != images[sources[0]["id"]]


def test_held_out_splits_are_clean_per_task_and_disjoint_from_train(full):
    m = MessyConfig()
    train_images, train_questions = set(), set()
    for n in MESSY_DATASETS:
        for r in load(full, n, "train"):
            train_images.add(image_digest(full, n, r))
            train_questions.add(question(r))
    train_images.discard(None)
    seen = {"test": Counter(), "val": Counter()}
    held_images = {}
    for split in ("test", "val"):
        held_images[split] = set()
        for n in MESSY_DATASETS:
            for r in load(full, n, split):
                p = r["provenance"]
                assert p["defect"] is None and p["group"] is None and p["image_of"] is None
                assert r["conversations"][1]["value"] == p["true_answer"]
                seen[split][r["task"]] += 1
                h = image_digest(full, n, r)
                if h is None:
                    assert question(r) not in train_questions
                else:
                    assert h not in train_images
                    held_images[split].add(h)
    tasks = {t for spec in MESSY_DATASETS.values() for t in spec[0]}
    for split in seen:
        assert seen[split] == {t: m.held_out_per_task for t in tasks}
    assert not held_images["test"] & held_images["val"]
    test_q = {question(r) for n in MESSY_DATASETS for r in load(full, n, "test") if "image" not in r}
    val_q = {question(r) for n in MESSY_DATASETS for r in load(full, n, "val") if "image" not in r}
    assert not test_q & val_q


def test_held_out_splits_sit_with_the_first_dataset_of_their_task(full):
    first = {}
    for n, (tasks, _) in MESSY_DATASETS.items():
        for t in tasks:
            first.setdefault(t, n)
    for n in MESSY_DATASETS:
        assert {r["task"] for r in load(full, n, "test")} == {t for t, f in first.items() if f == n}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a, b, c = (prepare_stream(tmp_path / x, "small", s, cfg=MESSY) and tmp_path / x
               for x, s in (("a", 3), ("b", 3), ("c", 4)))
    assert content_digest(a) == content_digest(b) != content_digest(c)
    assert (a / "noisy" / "README.md").read_bytes() == (b / "noisy" / "README.md").read_bytes()


def test_validation_can_be_the_evaluated_split(tmp_path):
    cfg = StreamConfig(stream="messy", messy=MessyConfig(held_out="val"))
    infos = prepare_stream(tmp_path, "small", 0, cfg=cfg)
    assert [i.test for i in infos] == [f"{i.name}/val.json" for i in infos]


def test_repo_cards_equal_the_generated_full_scale_cards(tmp_path):
    from lifelong.data.stream.messy.prepare import write_messy_cards

    for path in write_messy_cards(tmp_path):
        assert (REPO / "data_cards" / "messy" / path.name).read_text() == path.read_text(), (
            "regenerate with `python -c \"from lifelong.data.stream.prepare import main; "
            "main(['--out', 'data_cards/messy', '--cards-only', '--set', 'stream=messy'])\"`")


def test_ingesting_the_stream_keeps_tasks_and_quarantines_nothing(tmp_path):
    from lifelong.data.ingest import IngestConfig, ingest
    from lifelong.data.pool import Pool

    out = tmp_path / "data"
    infos = prepare_stream(out, "small", 0, cfg=MESSY)
    with Pool(tmp_path / "pool") as pool:
        for info in infos:
            for split, rel in (("train", info.train), ("test", info.test)):
                report = ingest(pool, out / rel, dataset=info.name, split=split, cfg=IngestConfig(progress=False))
                assert report.quarantined == [], report.summary()
            assert pool.count(split="train", dataset=info.name) == info.n_train  # near-copies are not exact copies
        tasks = {s.task for s in pool.samples(split="train")}
        assert tasks == {t for spec in MESSY_DATASETS.values() for t in spec[0]}
        assert np.all([s.provenance["stream"] == "messy" for s in pool.samples(split="test")])


def test_the_clean_streams_order_cannot_be_set_for_the_messy_stream():
    from lifelong.config import ConfigError, load_config

    with pytest.raises((ValueError, ConfigError), match="order"):
        load_config(StreamConfig, overrides=["stream=messy", "order=[digits]"])
    assert load_config(StreamConfig, overrides=["stream=messy"]).messy.templated_train == 640
