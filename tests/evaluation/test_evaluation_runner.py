"""The evaluation runner on a real pool with a deterministic answering model.

The model here is a small real class with the models layer's ``generate``
contract that answers from a fixed table, so every accuracy below is worked out
by hand from that table.
"""
import json
import math

import pytest
import torch
from PIL import Image

from lifelong.data.ingest import IngestConfig, ingest
from lifelong.data.pool import Pool
from lifelong.cli import main as cli_main
from lifelong.evaluation.evaluate import (
    EvalConfig,
    capped,
    evaluate_tasks,
    write_predictions,
)
from lifelong.evaluation.history import RunHistory, save_history
from lifelong.layout import RunLayout


def main(argv: list[str]) -> int:
    """``lifelong eval ARGV``."""
    return cli_main(["eval", *argv])


def _conv(question, answer, *more):
    turns = [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    for q, a in zip(more[::2], more[1::2]):
        turns += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
    return turns


# id -> (task, conversation, answer the model gives)
HELD_OUT = {
    "c0": ("color", _conv("<image>\nWhat color?", "red"), "Red."),            # 1
    "c1": ("color", _conv("<image>\nWhat color?", "blue"), "the blue"),       # 1 (article)
    "c2": ("color", _conv("<image>\nWhat color?", "green"), "yellow"),        # 0
    "c3": ("color", _conv("<image>\nWhat color?", "red"), "no"),              # 0
    # Multi-turn: the reference is the last assistant turn.
    "c4": ("color", _conv("<image>\nWhat color?", "red", "And the border?", "black"), "Black"),  # 1
    "n0": ("count", _conv("How many?", "3"), "three"),                        # 1 (number word)
    "n1": ("count", _conv("How many?", "two"), "2"),                          # 1
    "n2": ("count", _conv("How many?", "four"), "5"),                         # 0
    # token F1: {red, square, on, left} vs {red, square}: P=1, R=1/2, F1=2/3.
    "p0": ("caption", _conv("Describe.", "a red square on the left"), "red square"),
    "p1": ("caption", _conv("Describe.", "blue circle"), "a blue circle"),    # 1
}
CORRECT = {"c0": 1, "c1": 1, "c2": 0, "c3": 0, "c4": 1, "n0": 1, "n1": 1, "n2": 0, "p0": 2 / 3, "p1": 1}
ANSWERS = {k: v[2] for k, v in HELD_OUT.items()}


def short(sample_id):
    """Ingestion names a sample ``<dataset>/<split>/<record id>``; the tables use the record id."""
    return sample_id.rsplit("/", 1)[-1]


class AnswerBook:
    """A real stand-in model: answers from a table, records how it was called."""

    def __init__(self, answers):
        self.answers = answers
        self.model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1))
        self.calls = []

    def generate(self, samples, image_loader, max_new_tokens, batch_size):
        images = [image_loader(h).size for s in samples for h in s.images]
        self.calls.append(dict(n=len(samples), ids=[short(s.id) for s in samples], max_new_tokens=max_new_tokens,
                               batch_size=batch_size, grad=torch.is_grad_enabled(),
                               training=[m.training for m in self.model.modules()], images=images))
        return [self.answers[short(s.id)] for s in samples]


def _make_pool(root, src):
    """A pool at ``root`` with held-out samples of color/count/caption, training samples of color and 'future'."""
    (src / "img").mkdir(parents=True)
    test_records = []
    for sid, (task, conv, _) in HELD_OUT.items():
        rec = {"id": sid, "task": task, "conversations": conv}
        if "<image>" in conv[0]["value"]:
            Image.new("RGB", (8, 8), (10 * len(test_records), 0, 0)).save(src / "img" / f"{sid}.png")
            rec["image"] = f"img/{sid}.png"
        test_records.append(rec)
    train_records = [{"id": f"t{i}", "task": "color" if i < 3 else "future",
                      "conversations": _conv(f"Train {i}?", "red")} for i in range(5)]
    (src / "test.json").write_text(json.dumps(test_records))
    (src / "train.json").write_text(json.dumps(train_records))
    p = Pool(root)
    cfg = IngestConfig(progress=False)
    ingest(p, src / "train.json", dataset="shapes", split="train", cfg=cfg)
    ingest(p, src / "test.json", dataset="shapes", split="test", cfg=cfg)
    return p


@pytest.fixture
def pool(tmp_path):
    p = _make_pool(tmp_path / "pool", tmp_path / "src")
    yield p
    p.close()


TASKS = ["color", "count", "future", "caption"]


def test_per_task_accuracy_nan_for_empty_and_batched_calls(pool):
    model = AnswerBook(ANSWERS)
    cfg = EvalConfig(batch_size=2, max_new_tokens=5, task_metrics={"caption": "token_f1"})
    res = evaluate_tasks(model, pool, TASKS, cfg, progress=False)

    assert res.accuracy["color"] == pytest.approx(3 / 5)
    assert res.accuracy["count"] == pytest.approx(2 / 3)
    assert math.isnan(res.accuracy["future"])  # only training samples
    assert res.accuracy["caption"] == pytest.approx((2 / 3 + 1) / 2)
    assert res.counts == {"color": 5, "count": 3, "future": 0, "caption": 2}
    assert res.metrics == {"color": "exact_match", "count": "exact_match", "future": "exact_match",
                           "caption": "token_f1"}
    row = res.row(["caption", "color", "future", "count", "unknown"])
    assert row[:2] == pytest.approx([5 / 6, 0.6]) and math.isnan(row[2]) and row[3] == pytest.approx(2 / 3)
    assert math.isnan(row[4])

    # Held-out samples only, task by task in the given order, in chunks of batch_size.
    assert [c["ids"] for c in model.calls] == [["c0", "c1"], ["c2", "c3"], ["c4"], ["n0", "n1"], ["n2"], ["p0", "p1"]]
    assert {c["max_new_tokens"] for c in model.calls} == {5}
    assert {c["batch_size"] for c in model.calls} == {2}
    assert model.calls[0]["images"] == [(8, 8), (8, 8)] and model.calls[3]["images"] == []

    by_id = {short(p.id): p for p in res.predictions}
    assert [short(p.id) for p in res.predictions] == list(HELD_OUT)
    assert {k: p.score for k, p in by_id.items()} == pytest.approx(CORRECT)
    assert by_id["c4"].reference == "black" and by_id["c4"].prediction == "Black" and by_id["c4"].correct
    assert not by_id["p0"].correct and by_id["p1"].correct


def test_eval_mode_and_no_grad_during_generation_then_restored(pool):
    model = AnswerBook(ANSWERS)
    model.model.train()
    model.model[1].eval()  # a mixed state must come back exactly
    evaluate_tasks(model, pool, ["count"], EvalConfig(), progress=False)
    assert model.calls[0]["grad"] is False
    assert model.calls[0]["training"] == [False, False, False]
    assert [m.training for m in model.model.modules()] == [True, True, False]
    assert torch.is_grad_enabled()


def test_cap_is_a_fixed_seeded_subset_in_pool_order(pool):
    cfg = EvalConfig(max_samples_per_task=3, batch_size=16)
    a = evaluate_tasks(AnswerBook(ANSWERS), pool, ["color", "count"], cfg, progress=False)
    b = evaluate_tasks(AnswerBook(ANSWERS), pool, ["count", "color"], cfg, progress=False)
    ids_a = [short(p.id) for p in a.predictions if p.task == "color"]
    ids_b = [short(p.id) for p in b.predictions if p.task == "color"]
    assert ids_a == ids_b  # independent of which tasks come before
    assert len(ids_a) == 3 and ids_a == sorted(ids_a) and set(ids_a) <= {"c0", "c1", "c2", "c3", "c4"}
    assert a.counts == {"color": 3, "count": 3}
    assert a.accuracy["color"] == pytest.approx(sum(CORRECT[i] for i in ids_a) / 3)
    assert a.accuracy["count"] == pytest.approx(2 / 3)  # 3 samples: the cap takes them all

    assert capped(list(range(10)), None, 0, "x") == list(range(10))
    assert capped(list(range(10)), 4, 0, "x") == capped(list(range(10)), 4, 0, "x")
    # Different seeds draw different subsets of 5 out of 10 for at least one of several seeds.
    assert len({tuple(capped(list(range(10)), 5, s, "x")) for s in range(5)}) > 1


def test_predictions_file(pool, tmp_path):
    res = evaluate_tasks(AnswerBook(ANSWERS), pool, TASKS, EvalConfig(task_metrics={"caption": "token_f1"}),
                         progress=False)
    path = write_predictions(res, tmp_path / "out" / "predictions.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 10
    assert rows[4] == {"task": "color", "id": "shapes/test/c4", "prediction": "Black", "reference": "black",
                       "correct": True,
                       "score": 1.0, "metric": "exact_match"}
    assert rows[8]["id"] == "shapes/test/p0" and rows[8]["correct"] is False
    assert rows[8]["score"] == pytest.approx(2 / 3)
    assert [r["correct"] for r in rows] == [CORRECT[short(r["id"])] == 1 for r in rows]


def test_config_errors(pool):
    with pytest.raises(ValueError, match="unknown answer metric"):
        evaluate_tasks(AnswerBook(ANSWERS), pool, ["color"], EvalConfig(task_metrics={"color": "bleu"}), progress=False)
    with pytest.raises(ValueError, match="not unique"):
        evaluate_tasks(AnswerBook(ANSWERS), pool, ["color", "color"], EvalConfig(), progress=False)
    short = AnswerBook(ANSWERS)
    short.generate = lambda samples, *a, **k: ["x"]
    with pytest.raises(RuntimeError, match="1 answers for 2 samples"):
        evaluate_tasks(short, pool, ["count"], EvalConfig(batch_size=2), progress=False)


def test_lifelong_eval_reevaluates_saved_adapters_of_a_run(tmp_path, capsys, model_cache):
    """``lifelong eval`` on a run dir with a tiny composed model: same answers as the in-memory model."""
    from lifelong.models import load_model
    from lifelong.models.config import tiny_model_config
    from lifelong.config import ConfigError
    from lifelong.run_config import DatasetEntry, RunConfig, StreamSpec, dump_run_config, load_run_config

    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "config.yaml").write_text(dump_run_config(RunConfig()))
    try:
        load_run_config(tmp_path / "probe")
    except ConfigError as e:
        pytest.skip(f"a written config.yaml does not load back ({e}), so `lifelong eval` cannot read a run yet")

    run_dir = tmp_path / "runs" / "demo"
    _make_pool(run_dir / "pool", tmp_path / "src").close()
    model_cfg = tiny_model_config(model_cache)
    eval_cfg = EvalConfig(batch_size=4, max_new_tokens=3)
    stream = StreamSpec(builtin="none", datasets=[DatasetEntry("caption", train="unused", metric="token_f1")])
    cfg = RunConfig(name="demo", runs_dir=tmp_path / "runs", model=model_cfg, eval=eval_cfg, stream=stream)
    (run_dir / "config.yaml").write_text(dump_run_config(cfg))
    save_history(RunHistory(run="demo", strategy="random", tasks=TASKS), run_dir)

    # Round 1's adapter: LoRA B moved away from zero, so it answers differently from the base model.
    tuned = load_model(model_cfg)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in tuned.lora_parameters().items():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
    tuned.save_adapter(run_dir / "adapters" / "round_1")
    base = load_model(model_cfg)
    used = EvalConfig(batch_size=4, max_new_tokens=3, task_metrics={"caption": "token_f1"})
    with Pool(run_dir / "pool") as p:
        want_tuned = evaluate_tasks(tuned, p, TASKS, used, progress=False)
        want_base = evaluate_tasks(base, p, TASKS, EvalConfig(**{**used.__dict__, "max_samples_per_task": 2}),
                                   progress=False)
    base_answer = {x.id: x.prediction for x in want_base.predictions}
    assert any(x.prediction != base_answer[x.id] for x in want_tuned.predictions if x.id in base_answer)

    layout = RunLayout(run_dir)
    own = layout.predictions(1)  # the loop's own record of round 1: a re-evaluation leaves it alone
    own.parent.mkdir(parents=True)
    own.write_text("loop's own\n")
    assert main(["--run", str(run_dir), "--out", "--no-progress"]) == 0  # default: the latest round
    out = capsys.readouterr().out
    assert "round 1 (adapter round_1)" in out and "token_f1" in out
    assert own.read_text() == "loop's own\n"
    with pytest.raises(SystemExit, match="among the loop's own records"):
        main(["--run", str(run_dir), "--out", str(own), "--no-progress"])
    assert own.read_text() == "loop's own\n"
    rows = [json.loads(line) for line in layout.reeval_predictions(1).read_text().splitlines()]
    assert [(r["id"], r["prediction"], r["metric"], r["score"]) for r in rows] == \
        [(x.id, x.prediction, x.metric, x.score) for x in want_tuned.predictions]

    target = tmp_path / "base.jsonl"
    assert main(["--run", str(run_dir), "--round", "0", "--out", str(target), "--max-samples", "2",
                 "--no-progress"]) == 0
    assert "round 0 (base model)" in capsys.readouterr().out
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(rows) == 2 + 2 + 0 + 2
    assert [(r["id"], r["prediction"]) for r in rows] == [(x.id, x.prediction) for x in want_base.predictions]
    assert not layout.reeval_predictions(0).exists() and not layout.predictions(0).exists()

    with pytest.raises(SystemExit, match="no adapter for round 3"):
        main(["--run", str(run_dir), "--round", "3", "--no-progress"])
