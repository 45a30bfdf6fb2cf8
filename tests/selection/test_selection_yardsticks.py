"""The yardsticks (oracle, random_prune), the budget's base (budget.of), and that no
strategy but a declared yardstick is given the samples' provenance."""
from __future__ import annotations

import dataclasses
import json
import types

import numpy as np
import pytest

from lifelong.selection.budget import BudgetConfig, resolve_budget
from lifelong.selection.strategies import (
    STRATEGIES,
    SelectConfig,
    SelectionInput,
    clean_representatives,
    get_strategy,
)


def messy(defect=None, group=None) -> dict:
    return {"stream": "messy", "defect": defect, "group": group}


def _input(tasks, provenance, n_seen=None) -> SelectionInput:
    n = len(tasks)
    return SelectionInput([f"s{i}" for i in range(n)], np.zeros(n, bool), n_seen=n_seen, tasks=list(tasks),
                          provenance=list(provenance))


def test_clean_representatives_by_hand():
    prov = [
        messy(),  # 0 clean
        messy("wrong_label"),  # 1 out
        messy(None, "g1"),  # 2 copied record: stays
        messy("near_copy", "g1"),  # 3 its copy: out
        messy("near_copy", "g2"),  # 4 a group of copies only: the first stays
        messy("near_copy", "g2"),  # 5 out
        messy("dominant_answer"),  # 6 out
        messy("swapped_image"),  # 7 out
        messy("irrelevant_image"),  # 8 out
        messy("near_copy", "g3"),  # 9 copy listed before its source: the source stays
        messy(None, "g3"),  # 10
    ]
    assert np.flatnonzero(clean_representatives(prov)).tolist() == [0, 2, 4, 10]


def test_clean_representatives_read_the_clean_streams_flags():
    prov = [
        {"duplicate_of": None, "noise": None, "source_id": "a"},
        {"duplicate_of": "a", "noise": None, "source_id": "b"},  # near-copy of a
        {"duplicate_of": None, "noise": "mislabeled", "source_id": "c"},
        {"duplicate_of": None, "noise": "ungrounded", "source_id": "d"},
        {"source_id": "e"},  # a user dataset: no flags at all
    ]
    assert clean_representatives(prov).tolist() == [True, False, False, False, True]


def test_oracle_water_fills_the_budget_over_tasks_among_clean_samples():
    # task a: 10 clean; task b: 3 clean + 4 wrong labels; task c: 2 clean + 6 copies of one of them.
    tasks = ["a"] * 10 + ["b"] * 7 + ["c"] * 8
    prov = [messy()] * 10 + [messy()] * 3 + [messy("wrong_label")] * 4 \
        + [messy(None, "g"), messy()] + [messy("near_copy", "g")] * 6
    cfg = SelectConfig(strategy="oracle", budget=BudgetConfig(count=12, fraction=None))
    sel = get_strategy("oracle").fn(_input(tasks, prov), cfg)
    picked = np.asarray(tasks)[sel.indices]
    # 12 over clean sizes [10, 3, 2]: b and c taken whole, a gets 7.
    assert (picked == "a").sum() == 7 and (picked == "b").sum() == 3 and (picked == "c").sum() == 2
    assert clean_representatives(prov)[sel.indices].all()
    # More budget than clean samples: every clean representative, nothing else.
    cfg.budget = BudgetConfig(count=25, fraction=None)
    assert get_strategy("oracle").fn(_input(tasks, prov), cfg).indices.tolist() == \
        np.flatnonzero(clean_representatives(prov)).tolist()


def test_oracle_needs_provenance():
    inp = SelectionInput(["x"], np.zeros(1, bool))
    with pytest.raises(ValueError, match="provenance"):
        get_strategy("oracle").fn(inp, SelectConfig())


def test_random_prune_selects_as_random_and_evicts_uniformly():
    inp = SelectionInput([f"s{i}" for i in range(50)], np.arange(50) >= 40)
    cfg = SelectConfig(new_floor=1.0)
    random, random_prune = get_strategy("random"), get_strategy("random_prune")
    assert np.array_equal(random_prune.fn(inp, cfg).indices, random.fn(inp, cfg).indices)
    from lifelong.pruning.semdedup import PruneConfig

    assert get_strategy("random_prune").prune_config(PruneConfig(cap=10)).mode == "uniform"
    assert get_strategy("random").prune_config(PruneConfig(cap=10, mode="epsilon")).mode == "epsilon"
    assert [n for n, s in STRATEGIES.items() if s.eviction] == ["random_prune"]


def test_budget_of_pool_or_seen():
    # 1,200 active after pruning, 1,500 seen: 25 % of the pool is 300, of everything seen 375.
    assert resolve_budget(1200, BudgetConfig(fraction=0.25), seen=1500) == 300
    assert resolve_budget(1200, BudgetConfig(fraction=0.25, of="seen"), seen=1500) == 375
    assert resolve_budget(1200, BudgetConfig(fraction=0.25, of="seen")) == 300  # nothing pruned
    assert resolve_budget(100, BudgetConfig(fraction=0.9, of="seen"), seen=1000) == 100  # at most the pool
    assert resolve_budget(100, BudgetConfig(count=40, fraction=None, of="seen"), seen=1000) == 40  # counts are counts
    with pytest.raises(ValueError, match="fewer"):
        resolve_budget(100, BudgetConfig(fraction=0.5, of="seen"), seen=99)
    inp = SelectionInput([f"s{i}" for i in range(40)], np.zeros(40, bool), n_seen=80)
    cfg = SelectConfig(strategy="random", budget=BudgetConfig(fraction=0.25, of="seen"))
    assert get_strategy("random").fn(inp, cfg).indices.size == 20


def test_only_yardsticks_read_provenance():
    assert [n for n, s in STRATEGIES.items() if s.reads_provenance] == ["oracle"]


@pytest.fixture(scope="module")
def templated(tmp_path_factory):
    """The messy stream's first dataset at scale small: (its manifest entry, the data folder)."""
    from lifelong.data.stream import StreamConfig, prepare_stream

    out = tmp_path_factory.mktemp("messy")
    (info,) = prepare_stream(out, "small", 0, ["templated"], StreamConfig(stream="messy"))
    return info, out


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_the_select_stage_gives_provenance_only_to_yardsticks(name, templated, tmp_path, monkeypatch):
    """Through the real select stage and a real pool holding defect flags: what each strategy is handed."""
    from lifelong import stages
    from lifelong.data.ingest import IngestConfig, ingest
    from lifelong.data.pool import Pool
    from lifelong.layout import RunLayout

    info, out = templated
    pool = Pool(tmp_path / "pool")
    ingest(pool, out / info.train, dataset=info.name, split="train", cfg=IngestConfig(progress=False))
    seen = {}

    def spy(inp, cfg):
        seen["inp"] = inp
        return get_strategy("full").fn(inp, cfg)

    strat = STRATEGIES[name]
    run = types.SimpleNamespace(
        pool=pool, layout=RunLayout(tmp_path / "run"), strategy=dataclasses.replace(strat, fn=spy),
        skips_training=lambda t, entries: False, seeded=lambda t: types.SimpleNamespace(select=SelectConfig()),
        cfg=types.SimpleNamespace(select=SelectConfig(strategy=name)))
    d = tmp_path / "run" / "rounds" / "1" / "select"
    d.mkdir(parents=True)
    monkeypatch.setattr(stages, "scores", lambda run, t: None)
    stages.select(run, 1, d, types.SimpleNamespace(name=info.name), [])
    inp = seen["inp"]
    if strat.reads_provenance:
        assert len(inp.provenance) == len(inp.tasks) == len(inp.ids) == info.n_train
        assert any(p["defect"] == "near_copy" for p in inp.provenance)
    else:
        assert inp.provenance is None and inp.tasks is None
        assert "defect" not in json.dumps({"ids": inp.ids, "n_seen": inp.n_seen})
    pool.close()
