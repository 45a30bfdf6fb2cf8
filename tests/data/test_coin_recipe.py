"""configs/streams/coin.yaml on a tiny CoIN-shaped fixture: the data check, and all eight rounds end to end."""
import json
import re
from pathlib import Path

import pytest
import yaml
from coin_fixture import IMAGES, INSTRUCTIONS, TASKS, write_coin

from lifelong.cli import main
from lifelong.data.check import check_dataset, kind_of, report
from lifelong.layout import RunLayout
from lifelong.run_config import dump_run_config, load_run_config

ROOT = Path(__file__).resolve().parents[2]
COIN = ROOT / "configs/streams/coin.yaml"
# CoIN's order and metrics (CoIN's evaluation scripts; the config's comments say which is which).
ORDER = ["ScienceQA", "TextVQA", "ImageNet", "GQA", "VizWiz", "Grounding", "VQAv2", "OCRVQA"]
METRICS = ["mc_letter", "vqa_accuracy", "exact_match", "exact_match", "vizwiz_accuracy", "bbox_iou50",
           "vqa_accuracy", "exact_match"]
# The tiny model and the smoke run's sizes (configs/smoke.yaml): seconds a round.
TINY = [f"model={ROOT}/configs/models/tiny.yaml", "model.system_prompt=", "score.shard_size=64",
        "score.sketch.projection.out_dim=64", "select.cluster.k=2", "train.batch_size=8", "train.grad_accum=1",
        "train.progress=false", "ingest.progress=false", "eval.max_new_tokens=4",
        "eval.max_samples_per_task=2", "tracker.log_with=[]"]


@pytest.fixture(scope="module")
def coin(tmp_path_factory):
    root = tmp_path_factory.mktemp("coin")
    return root, write_coin(root)


def fixture_config(tmp_path: Path, counts: dict) -> Path:
    """coin.yaml with the fixture's record counts as the expected ones (the model section left to the defaults)."""
    data = yaml.safe_load(COIN.read_text())
    data.pop("model")
    for d in data["stream"]["datasets"]:
        d["expected"] = counts[d["name"]]
    path = tmp_path / "coin_fixture.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_coin_config_is_coins_order_and_metrics(coin, tmp_path):
    root, _ = coin
    cfg = load_run_config(COIN, [f"data_root={root}"])
    saved = tmp_path / "config.yaml"  # what a run records reads back the same (paths stay resolved)
    saved.write_text(dump_run_config(cfg))
    assert load_run_config(saved) == cfg
    assert [d.name for d in cfg.stream.datasets] == ORDER == list(TASKS)
    assert [d.metric for d in cfg.stream.datasets] == METRICS
    assert cfg.model.family == "hf" and cfg.model.hf.path == "llava-hf/llava-1.5-7b-hf"  # model: ../models/...
    for d in cfg.stream.datasets:  # relative paths resolve against data_root
        assert Path(d.train) == root / INSTRUCTIONS / d.name / "train.json"
        assert Path(d.images) == root / IMAGES and Path(d.test).parent == root / INSTRUCTIONS / d.name
    # A section file on the command line replaces the section; later overrides apply on top.
    tiny = load_run_config(COIN, [f"data_root={root}", f"model={ROOT}/configs/models/tiny.yaml", "model.max_length=64"])
    assert tiny.model.family == "composed" and tiny.model.max_length == 64


def test_data_check_passes_a_complete_download(coin, tmp_path, capsys):
    root, counts = coin
    assert main(["data", "check", str(fixture_config(tmp_path, counts)), f"data_root={root}"]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("all 8 datasets ok")
    assert sum(line.endswith("  ok") for line in out.splitlines()) == 16  # a train and a test row each


def test_data_check_names_the_short_task_and_the_broken_records(tmp_path, capsys):
    root = tmp_path / "coin"
    counts = write_coin(root)
    folder = root / INSTRUCTIONS
    # Planted: one image missing (TextVQA), one record short (GQA train: 7 of 8), a corrupt image
    # (OCRVQA), a held-out question without its answer (VizWiz val.json).
    missing = json.loads((folder / "TextVQA/train.json").read_text())[2]["image"]
    (root / IMAGES / missing).unlink()
    gqa = json.loads((folder / "GQA/train.json").read_text())
    (folder / "GQA/train.json").write_text(json.dumps(gqa[:-1]))
    corrupt = json.loads((folder / "OCRVQA/train.json").read_text())[0]["image"]
    (root / IMAGES / corrupt).write_bytes(b"\xff\xd8\xff not a jpeg")
    vizwiz = json.loads((folder / "VizWiz/val.json").read_text())
    vizwiz[1]["answer"] = ""
    (folder / "VizWiz/val.json").write_text(json.dumps(vizwiz))

    assert main(["data", "check", str(fixture_config(tmp_path, counts)), f"data_root={root}"]) == 1
    out = capsys.readouterr().out
    rows = {tuple(line.split()[:2]): line for line in out.splitlines() if line.split()[:1] and
            line.split()[0] in TASKS}
    assert "1 record with missing image" in rows["TextVQA", "train"]
    assert f"image '{missing}' does not exist" in out  # the place: file, line, path
    assert "7 records of 8 expected (87.5 %)" in rows["GQA", "train"]
    assert "1 record with unreadable image" in rows["OCRVQA", "train"]
    assert "1 record with no answer" in rows["VizWiz", "test"]
    assert rows["ScienceQA", "train"].endswith(" ok")
    assert out.strip().splitlines()[-1] == "problems in 4 of 8 datasets: TextVQA, GQA, VizWiz, OCRVQA"
    # Splits checked in parallel processes give the same report.
    assert main(["data", "check", str(fixture_config(tmp_path, counts)), f"data_root={root}", "--jobs", "2"]) == 1
    def same(text):  # PIL's message names an object's address
        return re.sub(r" at 0x[0-9a-f]+", "", text)

    assert same(capsys.readouterr().out) == same(out)


def test_data_check_against_coins_published_counts(coin, capsys):
    """The shipped config's expected counts: the fixture is far short of every one, by task name."""
    root, _ = coin
    assert main(["data", "check", str(COIN), f"data_root={root}"]) == 1
    out = capsys.readouterr().out
    assert "8 records of 12,726 expected (0.1 %)" in out  # ScienceQA train
    assert "3 records of 4,319 expected" in out  # VizWiz val
    assert "problems in 4 of 8 datasets: ScienceQA, TextVQA, ImageNet, VizWiz" in out  # the ones with counts


def test_data_check_reports_a_missing_file_and_an_unset_data_root(tmp_path, capsys):
    checks = check_dataset("X", str(tmp_path / "nope.json"), expected={"train": 3})
    text, ok = report(checks)
    assert not ok and "nope.json does not exist" in text
    assert kind_of("no answer: a question record needs ...") == "no answer"
    assert kind_of("empty assistant turn") == "no answer"
    # Without data_root the run refuses up front and says what to set.
    assert main(["run", str(COIN), f"runs_dir={tmp_path}"]) == 2
    assert "give data_root=DIR" in capsys.readouterr().err


@pytest.mark.e2e
def test_coin_recipe_runs_all_eight_rounds(coin, tmp_path, capsys):
    root, _ = coin
    assert main(["run", str(COIN), f"data_root={root}", f"runs_dir={tmp_path}", *TINY]) == 0
    run = tmp_path / "coin"
    hist = json.loads((run / "metrics/history.json").read_text())
    assert hist["tasks"] == ORDER
    assert len(hist["accuracy"]) == 9  # row 0 + one per round
    for t in range(1, 9):
        assert (run / f"adapters/round_{t}/adapter_model.safetensors").exists()
    # Every task is scored with its CoIN metric; a Grounding question's reference is its answer_bbox.
    preds = [json.loads(line) for line in RunLayout(run).predictions(8).read_text().splitlines()]
    assert {p["task"]: p["metric"] for p in preds} == dict(zip(ORDER, METRICS))
    grounding = [p for p in preds if p["task"] == "Grounding"]
    assert len(grounding) == 2 and all(p["reference"] == "[0.25, 0.25, 0.75, 0.75]" for p in grounding)


def test_question_records_of_an_evaluation_file():
    """CoIN's held-out files are question records (question_id, image, text, answer): one user turn with the
    image first, the answer (a Grounding record's answer_bbox) as the assistant turn; no answer is refused."""
    from lifelong.data.records import BadRecord, IngestConfig, normalize_llava

    cfg = IngestConfig()
    rid, conv, images, _ = normalize_llava(
        {"question_id": 7, "image": "ScienceQA/test/7/image.png", "text": "<image>\nWhich?\nA. x\nB. y", "answer": "B"},
        cfg)
    assert (rid, images) == (7, ["ScienceQA/test/7/image.png"])
    assert conv == [{"role": "user", "content": "<image>\nWhich?\nA. x\nB. y"}, {"role": "assistant", "content": "B"}]
    _, conv, images, _ = normalize_llava({"question_id": "q", "text": "Text only?", "answer": 3}, cfg)
    assert images == [] and conv[0]["content"] == "Text only?" and conv[1]["content"] == "3"
    _, conv, _, _ = normalize_llava({"question_id": "g", "image": "a.jpg", "text": "Box of the cat.", "answer": "cat",
                                     "answer_bbox": [0.1, 0.2, 0.5, 0.75], "size": [640, 480]}, cfg)
    assert conv[1]["content"] == "[0.1, 0.2, 0.5, 0.75]"
    for answer in ("", None):
        with pytest.raises(BadRecord, match="no answer"):
            normalize_llava({"question_id": 1, "text": "Q?", "answer": answer}, cfg)
