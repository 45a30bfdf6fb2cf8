"""A round's composition: counts per dataset and task, defect shares, cluster purity (numbers by hand)."""
import json

import pyarrow as pa
import pyarrow.parquet as pq

from lifelong.data.ledger import PruneRecord
from lifelong.data.pool import Pool
from lifelong.data.sample import Sample
from lifelong.evaluation.composition import round_composition, write_round_composition
from lifelong.layout import RunLayout, write_json

# id, dataset, task, defect (messy provenance), copy group
ROWS = [
    ("a0", "mix", "shape", None, None),
    ("a1", "mix", "shape", "near_copy", "g0"),
    ("a2", "mix", "colour", None, None),
    ("a3", "mix", "colour", "wrong_label", None),
    ("b0", "noisy", "colour", "swapped_image", None),
    ("b1", "noisy", "colour", None, None),
]


def _pool(tmp_path) -> Pool:
    pool = Pool(tmp_path / "pool")
    with pool.transaction():
        ing = pool.new_ingest("x.json", "llava", "mix", "train", 1)
        for sid, ds, task, defect, group in ROWS:
            s = Sample(sid, ds, task, "train", [{"role": "user", "content": f"question {sid}"},
                                                {"role": "assistant", "content": f"answer {sid}"}],
                       provenance={"stream": "messy", "defect": defect, "group": group})
            pool.insert(s, s.content_key(), 1, ing)
    return pool


def test_counts_and_defect_shares_of_a_round(tmp_path):
    pool = _pool(tmp_path)
    pool.prune([PruneRecord("a1", 1, "semdedup_duplicate"), PruneRecord("b0", 1, "semdedup_thin")])
    # The round's pool is the 4 active samples plus the 2 it pruned.
    c = round_composition(pool, ["a0", "a3", "b0"], ["a1", "b0"],
                          clusters=[{"id": 0, "size": 4, "expert": "ppl"}, {"id": 1, "size": 2, "expert": "el2n"}],
                          assignment={"a0": 0, "a1": 0, "a2": 1, "a3": 0, "b0": 0, "b1": 1})
    assert (c["pool"], c["selected"], c["pruned"]) == (6, 3, 2)
    assert c["by_dataset"] == {"mix": {"pool": 4, "selected": 2, "pruned": 1},
                               "noisy": {"pool": 2, "selected": 1, "pruned": 1}}
    assert c["by_task"]["colour"] == {"pool": 4, "selected": 2, "pruned": 1}
    # pool: 3 of 6 flagged, one of each kind; selected a0 (clean), a3 (wrong label), b0 (swapped): 2 of 3.
    assert c["defects"]["pool"]["any"] == 0.5 and c["defects"]["pool"]["near_copy"] == 1 / 6
    assert c["defects"]["selected"]["any"] == 2 / 3 and c["defects"]["selected"]["wrong_label"] == 1 / 3
    assert c["defects"]["pruned"] == {**{k: 0.0 for k in c["defects"]["pruned"]}, "near_copy": 0.5,
                                      "swapped_image": 0.5, "any": 1.0}
    # cluster 0 = a0 a1 a3 (mix) + b0: shape 2, colour 2 -> purity 0.5; 3 of 4 flagged; 3 selected.
    c0, c1 = c["clusters"]
    assert (c0["purity"], c0["defect_share"], c0["selected"], c0["expert"]) == (0.5, 0.75, 3, "ppl")
    assert (c1["task"], c1["purity"], c1["defect_share"], c1["selected"]) == ("colour", 1.0, 0.0, 0)


def test_the_report_stage_writes_it_from_the_rounds_files(tmp_path):
    pool = _pool(tmp_path)
    layout = RunLayout(tmp_path / "run")
    layout.selection(1).parent.mkdir(parents=True)
    write_json(layout.selection(1), {"ids": ["a0", "a2"], "clusters": [{"id": 3, "size": 6, "expert": "grand"}]})
    pq.write_table(pa.table({"id": [r[0] for r in ROWS], "cluster": [3] * 6}), layout.scores_table(1))
    layout.pruned(1).parent.mkdir(parents=True)
    write_json(layout.pruned(1), {"round": 1, "records": [{"id": "a1"}]})
    pool.prune([PruneRecord("a1", 1, "semdedup_duplicate")])
    layout.stage_dir(1, "report").mkdir(parents=True)
    c = write_round_composition(layout, pool, 1)
    assert json.loads(layout.composition(1).read_text()) == c
    assert (c["round"], c["pool"], c["selected"], c["pruned"]) == (1, 6, 2, 1)
    # colour holds 4 of the 6 samples of the one cluster.
    assert c["clusters"] == [{"id": 3, "size": 6, "expert": "grand", "selected": 2, "task": "colour",
                              "purity": 4 / 6, "defect_share": 0.5}]
