"""configs/smoke.yaml end to end, and permanent pruning to the pool cap."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lifelong.cli import main
from lifelong.data.pool import Pool
from lifelong.layout import RunLayout

pytestmark = pytest.mark.e2e  # a whole run of the loop: in the default suite (-m 'not e2e' leaves it out)

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_config_runs_every_round(tmp_path, capsys):
    assert main(["run", str(ROOT / "configs/smoke.yaml"), f"runs_dir={tmp_path}", "tracker.log_with=[tensorboard]"]) == 0
    out = capsys.readouterr().out
    assert "wall time per stage" in out
    run = tmp_path / "smoke"
    hist = json.loads((run / "metrics/history.json").read_text())
    tasks = ["vqa_shape", "vqa_color", "digits", "counting", "category", "position", "compare"]
    assert hist["tasks"] == tasks
    assert len(hist["accuracy"]) == 8  # row 0 + one per round
    with Pool(run / "pool") as pool:
        ingested = 0
        for t, rec in enumerate(hist["rounds"], start=1):
            ingested += 40
            sel = json.loads((run / f"rounds/{t}/select/selection.json").read_text())
            pool_before = min(ingested, 120 + 40)  # previous round left <= cap, plus 40 new
            assert sel["pool_size"] <= pool_before
            assert sel["budget"] == sel["pool_size"] // 2  # budget fraction 0.5
            assert rec["pool_size"] <= 120  # the cap holds after every round
            assert (run / f"adapters/round_{t}/adapter_model.safetensors").exists()
            assert (run / f"data_cards/round_{t}.md").exists()
            if sel["clusters"]:
                assert sum(c["share"] for c in sel["clusters"]) == sel["budget"]
            # How many of the arriving dataset's samples the round took, counted from the ids.
            new = sum(1 for i in sel["ids"] if i.split("/", 1)[0] == tasks[t - 1])
            assert sel["new_selected"] == new == RunLayout(run).stage_info(t, "select")["new_selected"]
        # The ledger accounts for every sample that left the pool.
        assert pool.count() == 120
        assert len(pool.ledger()) == 7 * 40 - 120
        assert pool.check() == []
        # A pruned row leaves the manifest at the report after its round's (its data card is
        # written by then): only the last round's are still there, and every card counted its own.
        per_round = Counter(r["round"] for r in pool.ledger())
        last = max(per_round)
        assert pool.count(status="pruned", split=None) == per_round[last] > 0
        for t, n in per_round.items():
            card = (run / f"data_cards/round_{t}.md").read_text()
            total = next(line for line in card.splitlines() if line.startswith("| **total**"))
            assert total.split("|")[6].strip() == str(n) and "| ? |" not in card, (t, n, total)
    assert (run / "dashboard.html").stat().st_size > 10_000
    assert list((run / "metrics/tb").rglob("events.out.tfevents*"))


def _write_dataset(root: Path, n_distinct: int, n_dups: int, block: int = 1) -> None:
    """Distinct questions (one word each) and exact-content near-duplicates (1 px image shift);
    ``block`` > 1: pictures of 16 x 16 blocks of that many pixels (smooth, as photographs are at
    a thumbnail's scale) rather than 16 x 16 pixels of noise."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    recs = []
    words = ["apple", "river", "cloud", "stone", "music", "table", "green", "horse", "paper", "light",
             "sugar", "metal", "ocean", "tiger", "bread", "chair", "dream", "frost", "glass", "honey"]
    for i in range(n_distinct):
        arr = np.kron(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), np.ones((block, block, 1), np.uint8))
        Image.fromarray(arr).save(root / "images" / f"{i}.png")
        q = f"<image>\nTell me about {words[i % len(words)]} number {i * 7919 % 1000}."
        recs.append({"id": f"d{i}", "image": f"images/{i}.png",
                     "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": words[i % 20]}],
                     "provenance": {"duplicate_of": None}})
    for j in range(n_dups):
        src = recs[j]
        arr = np.array(Image.open(root / "images" / f"{j}.png"))
        Image.fromarray(np.roll(arr, 1, axis=1)).save(root / "images" / f"dup{j}.png")
        recs.append({**src, "id": f"dup{j}", "image": f"images/dup{j}.png", "provenance": {"duplicate_of": src["id"]}})
    (root / "train.json").write_text(json.dumps(recs))


def test_pruning_removes_near_duplicates_before_distinct_samples(tmp_path):
    data = tmp_path / "qa"
    _write_dataset(data, n_distinct=30, n_dups=8)
    assert main(["run", str(ROOT / "configs/smoke.yaml"), f"runs_dir={tmp_path}", "name=prune",
                 "stream.builtin=none", f"stream.datasets=[{{name: qa, train: {data}}}]", "select.cluster.k=1",
                 "prune.cap=30", "tracker.log_with=[]"]) == 0
    with Pool(tmp_path / "prune/pool") as pool:
        assert pool.count() == 30
        ledger = pool.ledger()
        assert len(ledger) == 8
        removed = {r["sample_id"].split("/")[-1] for r in ledger}
        # Each near-duplicate pair lost exactly one member; no distinct sample was touched.
        for j in range(8):
            assert len({f"d{j}", f"dup{j}"} & removed) == 1, removed
        assert all(r["reason"] == "semdedup_duplicate" and r["max_sim"] > 0.99 for r in ledger)
        # Content of pruned samples is gone for good; their images too when nothing else uses them.
        assert pool.check() == []
        row = pool.db.execute("SELECT conversation FROM samples WHERE status='pruned'").fetchone()
        assert row[0] is None


def test_pruning_on_content_features_finds_the_near_duplicates(tmp_path):
    """prune.features content, thin dataset: the shifted copies are the removals, by their content
    (the same words, the picture one pixel over), with no model involved."""
    data = tmp_path / "qa"
    _write_dataset(data, n_distinct=30, n_dups=8, block=4)
    assert main(["run", str(ROOT / "configs/smoke.yaml"), f"runs_dir={tmp_path}", "name=prune",
                 "stream.builtin=none", f"stream.datasets=[{{name: qa, train: {data}}}]", "select.cluster.k=1",
                 "prune.cap=30", "prune.features=content", "prune.thin=dataset", "prune.epsilon=0.02",
                 "tracker.log_with=[]"]) == 0
    with Pool(tmp_path / "prune/pool") as pool:
        assert pool.count() == 30
        ledger = pool.ledger()
        removed = {r["sample_id"].split("/")[-1] for r in ledger}
        for j in range(8):
            assert len({f"d{j}", f"dup{j}"} & removed) == 1, removed
        assert all(r["reason"] == "semdedup_duplicate" and r["max_sim"] > 0.98 for r in ledger)
    assert not list(tmp_path.glob("prune/rounds/*/prune/embeddings*.npy"))  # the features file is gone


def test_select_then_train_outside_a_run(tmp_path, capsys):
    """`lifelong select` and `lifelong train` on a plain pool, as a user would chain them."""
    from lifelong.data.stream import prepare_stream

    prepare_stream(tmp_path / "data", "small", datasets=["digits", "text_only"])
    pool = tmp_path / "pool"
    assert main(["ingest", str(tmp_path / "data/digits"), str(tmp_path / "data/text_only"), "--pool", str(pool)]) == 0
    cfg = str(ROOT / "configs/smoke.yaml")
    assert main(["select", cfg, "--pool", str(pool), "--out", str(tmp_path / "sel")]) == 0
    sel = json.loads((tmp_path / "sel/selection.json").read_text())
    assert sel["pool_size"] == 80 and sel["budget"] == 40 and len(set(sel["ids"])) == 40
    assert sum(c["share"] for c in sel["clusters"]) == 40
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "sel/scores.parquet").to_pydict()
    assert sorted(i for i, s in zip(table["id"], table["selected"]) if s) == sorted(sel["ids"])
    assert main(["train", cfg, "--pool", str(pool), "--selection", str(tmp_path / "sel/selection.json"),
                 "--out", str(tmp_path / "adapter")]) == 0
    assert (tmp_path / "adapter/adapter_model.safetensors").exists()
    losses = json.loads((tmp_path / "adapter/losses.json").read_text())
    assert len(losses) == 5  # 40 samples / batch 8
