"""lineage.json and the model card against the run's own files; the round data card counted by hand."""
from __future__ import annotations

import hashlib
import json

import pytest
import yaml

from export_tiny_run import CLUSTERS, DATASETS, PRUNED, SELECTED
from lifelong.export import build_lineage, export, write_round_card


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lineage_matches_run_files(tiny_run, tmp_path):
    run_dir, _, base_dir = tiny_run
    out = export(run_dir, tmp_path / "exp", round=2, base_model=str(base_dir))
    lin = json.loads((out / "lineage.json").read_text())
    assert lin["round"] == 2 and lin["run"] == "tinyrun"
    assert lin["datasets"] == ["shapes", "count"]
    assert lin["adapter_sha256"] == _sha(out / "adapter_model.safetensors")
    assert lin["adapter_sha256"] == _sha(run_dir / "adapters" / "round_2" / "adapter_model.safetensors")
    assert [r["round"] for r in lin["rounds"]] == [1, 2]
    for r in lin["rounds"]:
        t = r["round"]
        sel = json.loads((run_dir / "rounds" / str(t) / "select" / "selection.json").read_text())
        pr = json.loads((run_dir / "rounds" / str(t) / "prune" / "pruned.json").read_text())
        assert r["dataset"] == DATASETS[t] == sel["dataset"]
        assert r["selected"] == SELECTED[t] == sel["ids"]
        assert [(c["id"], c["size"], c["share"], c["expert"]) for c in r["clusters"]] == [
            (c["id"], c["size"], c["share"], c["expert"]) for c in CLUSTERS[t]]
        assert [p["id"] for p in r["pruned"]] == [i for i, _, _ in PRUNED[t]] == [p["id"] for p in pr["records"]]
        assert r["pool_size"] == sel["pool_size"]
        assert r["ingest"]["added"] == {1: 6, 2: 4}[t]
    assert r["pruned"][0] == {"id": "s4", "cluster": 0, "max_sim": 0.97, "reason": "semdedup"}
    # Union in first-selected order: round 1's four, then round 2's new ones (s4 again is not repeated).
    assert lin["trained_on"] == ["s0", "s1", "s4", "s5", "s2", "c0", "c2", "c3"]

    # An earlier round's adapter has only the rounds up to it; round 0 (fresh) none.
    one = build_lineage(run_dir, 1)
    assert [r["round"] for r in one["rounds"]] == [1] and one["trained_on"] == SELECTED[1]
    assert one["adapter_sha256"] == _sha(run_dir / "adapters" / "round_1" / "adapter_model.safetensors")
    assert build_lineage(run_dir, 0)["rounds"] == [] and build_lineage(run_dir, 0)["trained_on"] == []


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_model_card_front_matter_and_summary(tiny_run, tmp_path):
    run_dir, _, base_dir = tiny_run
    card = (export(run_dir, tmp_path / "r2", round=2, base_model=str(base_dir)) / "README.md").read_text()
    fm = _front_matter(card)
    assert fm["library_name"] == "peft"
    assert fm["datasets"] == ["shapes", "count"]
    assert {"lifelong", "adapt-inf", "lora"} <= set(fm["tags"])
    assert "base_model" not in fm  # a local random test base has no hub id
    values = {m["type"]: m["value"] for m in fm["model-index"][0]["results"][0]["metrics"]}
    # Accuracy rows [0.1, 0.2], [0.6, 0.3], [0.5, 0.7]:
    # A_2 = (0.5 + 0.7) / 2; forgetting = a[1,0] - a[2,0]; BWT = a[2,0] - a[1,0]; FWT = a[1,1] - a[0,1].
    assert values == pytest.approx({"avg_acc": 0.6, "forgetting": 0.1, "bwt": -0.1, "fwt": 0.1})
    assert "| 2 | count | 10 | 5 | 3 | el2n ×1, ig ×1 |" in card
    assert "| 1 | 0.6000 | 0.3000 |" in card

    # After round 1, forgetting and BWT are undefined (left out of the model-index), FWT = 0.3 - 0.2.
    fm1 = _front_matter((export(run_dir, tmp_path / "r1", round=1) / "README.md").read_text())
    values1 = {m["type"]: m["value"] for m in fm1["model-index"][0]["results"][0]["metrics"]}
    assert values1 == pytest.approx({"avg_acc": 0.6, "fwt": 0.1})
    assert fm1["datasets"] == ["shapes"]


def _table_rows(text: str, header_start: str) -> list[list[str]]:
    lines = text.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[i + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_round_card_counts(tiny_run):
    run_dir, _, _ = tiny_run
    path = write_round_card(run_dir, 2)
    assert path == run_dir / "data_cards" / "round_2.md"
    text = path.read_text()
    # Round 2 selected s2, c0, c2, c3, s4 and pruned s4 (dup of s1), c3 (dup of c0), s5 (mislabeled):
    #   count/count:  selected c0, c2 (ungrounded), c3 (dup) -> 3, 1 dup, 1 noisy; pruned c3 -> 1, 1 dup, 0 noisy
    #   shapes/color: selected none; pruned s5 (mislabeled) -> 1, 0 dup, 1 noisy
    #   shapes/shape: selected s2, s4 (dup) -> 2, 1 dup, 0 noisy; pruned s4 -> 1, 1 dup, 0 noisy
    assert _table_rows(text, "| dataset | task |") == [
        ["count", "count", "3", "1", "1", "1", "1", "0"],
        ["shapes", "color", "0", "0", "0", "1", "0", "1"],
        ["shapes", "shape", "2", "1", "0", "1", "1", "0"],
        ["**total**", "", "5", "2", "1", "3", "2", "1"],
    ]
    assert "near-duplicates pruned (`provenance.duplicate_of` set): 2" in text
    assert "noisy samples pruned (`provenance.noise` set): 1 (mislabeled 1)" in text
    assert "Dataset arrived: **count** (4 samples added" in text
    assert "5 of 10 active pool samples" in text
    assert _table_rows(text, "| cluster |") == [["0", "6", "3", "ig"], ["1", "4", "2", "el2n"]]

    one = write_round_card(run_dir, 1).read_text()
    assert _table_rows(one, "| dataset | task |") == [
        ["shapes", "color", "1", "0", "1", "0", "0", "0"],
        ["shapes", "shape", "3", "1", "0", "0", "0", "0"],
        ["**total**", "", "4", "1", "1", "0", "0", "0"],
    ]
    assert "Pruning (cap none): 0 samples removed" in one
