"""The evaluation runner gives each metric the sample's prompt: mc_letter reads the options there."""
import json

import pytest

from lifelong.data.ingest import IngestConfig, ingest
from lifelong.data.pool import Pool
from lifelong.evaluation.evaluate import EvalConfig, evaluate_tasks

PROMPT = "Which animal is a mammal?\nA. whale\nB. shark\nAnswer with the option's letter."
# id -> (reference, the model's answer, score under mc_letter, score under exact_match)
HELD_OUT = {
    "q0": ("A", "A", 1, 1),
    "q1": ("A", "The answer is A.", 1, 0),
    "q2": ("A", "whale", 1, 0),        # the option's text: only mc_letter, which reads the prompt, sees it
    "q3": ("A", "(B)", 0, 0),
    "q4": ("A", "", 0, 0),             # empty: 0 under both (exact_match gave 1 when "A" normalised to "")
    "q5": ("B", "b", 1, 1),
}


class AnswerBook:
    """Answers from a table, keyed by the record id."""

    def generate(self, samples, image_loader, max_new_tokens, batch_size):
        return [HELD_OUT[s.id.rsplit("/", 1)[-1]][1] for s in samples]


@pytest.fixture
def pool(tmp_path):
    # The id in the prompt keeps the samples distinct (the pool stores identical content once).
    records = [{"id": sid, "task": "mcq", "conversations": [{"from": "human", "value": f"({sid}) {PROMPT}"},
                                                           {"from": "gpt", "value": ref}]}
               for sid, (ref, *_) in HELD_OUT.items()]
    (tmp_path / "test.json").write_text(json.dumps(records))
    p = Pool(tmp_path / "pool")
    ingest(p, tmp_path / "test.json", dataset="mcq", split="test", cfg=IngestConfig(progress=False))
    yield p
    p.close()


@pytest.mark.parametrize("metric, column", [("mc_letter", 2), ("exact_match", 3)])
def test_metric_sees_the_prompt(pool, metric, column):
    res = evaluate_tasks(AnswerBook(), pool, ["mcq"], EvalConfig(task_metrics={"mcq": metric}), progress=False)
    by_id = {p.id.rsplit("/", 1)[-1]: p.score for p in res.predictions}
    assert by_id == {sid: float(row[column]) for sid, row in HELD_OUT.items()}
    assert res.accuracy["mcq"] == pytest.approx(sum(row[column] for row in HELD_OUT.values()) / len(HELD_OUT))
