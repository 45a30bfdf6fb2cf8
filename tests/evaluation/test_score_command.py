"""``lifelong score``: a JSONL of answers scored with any registered metric; user errors name the line."""
import json
import subprocess
import sys

import pytest

from lifelong.cli import main


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def run_score(capsys, metric, path):
    rc = main(["score", "--metric", metric, "--predictions", str(path)])
    out, err = capsys.readouterr()
    return rc, out.strip().splitlines(), err.strip()


def test_vqa_accuracy_file(tmp_path, capsys):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"prediction": "Two", "answers": ["2"] * 2 + ["3"] * 8},                   # 2 of 10 match: 0.6
        {"prediction": "yes", "answers": [{"answer": "yes", "answer_id": i} for i in range(10)]},  # VQA layout: 1.0
        "",                                                                        # blank lines are skipped
        {"prediction": "no", "answer": "yes", "id": 7},                            # one reference, wrong: 0
    ])
    rc, lines, err = run_score(capsys, "vqa_accuracy", path)
    assert rc == 0 and err == ""
    mean, n = lines[-1].split()
    assert float(mean) == pytest.approx((0.6 + 1.0 + 0.0) / 3, abs=1e-6) and n == "3"


def test_mc_letter_reads_the_question(tmp_path, capsys):
    q = "Which is a mammal?\nA. whale\nB. shark"
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"prediction": "The answer is A.", "answer": "A", "question": q},
        {"prediction": "whale", "answer": "A", "question": q},
        {"prediction": "", "answer": "A", "question": q},
        {"prediction": "(B)", "answer": "A"},
    ])
    rc, lines, _ = run_score(capsys, "mc_letter", path)
    assert rc == 0 and lines[-1] == "0.500000 4"


def test_box_and_number_answers(tmp_path, capsys):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"prediction": "[0, 0, 4, 4]", "answer": [0, 0, 4, 8]},  # four numbers: one box, IoU 0.5
        {"prediction": "[0, 0, 1, 1]", "answers": ["[5, 5, 6, 6]"]},
    ])
    rc, lines, _ = run_score(capsys, "bbox_iou50", path)
    assert rc == 0 and lines[-1] == "0.500000 2"
    path = write_jsonl(tmp_path / "n.jsonl", [{"prediction": "three", "answer": 3}])
    rc, lines, _ = run_score(capsys, "exact_match", path)
    assert rc == 0 and lines[-1] == "1.000000 1"


@pytest.mark.parametrize(
    "row, message",
    [
        ("{not json", "line 2: not valid JSON"),
        ('["a", "b"]', "line 2: expected a JSON object"),
        ({"answer": "a"}, 'line 2: no "prediction"'),
        ({"prediction": None, "answer": "a"}, 'line 2: "prediction" must be a string, got null'),
        ({"prediction": "a"}, 'line 2: no "answers"'),
        ({"prediction": "a", "answers": []}, 'line 2: "answers" is empty'),
        ({"prediction": "a", "answers": [["x"]]}, "line 2: each answer must be a string"),
        ({"prediction": "a", "answer": "a", "question": 5}, 'line 2: "question" must be a string'),
    ],
)
def test_bad_line_is_named(tmp_path, capsys, row, message):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prediction": "a", "answer": "a"}, row])
    rc, lines, err = run_score(capsys, "exact_match", path)
    assert rc == 2 and lines == []
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert f"{path} {message}" in err


def test_user_errors(tmp_path, capsys):
    good = write_jsonl(tmp_path / "p.jsonl", [{"prediction": "a", "answer": "a"}])
    rc, _, err = run_score(capsys, "vqa", good)
    assert rc == 2 and "unknown answer metric 'vqa'" in err and "vqa_accuracy" in err
    rc, _, err = run_score(capsys, "exact_match", tmp_path / "missing.jsonl")
    assert rc == 2 and err.startswith("error: cannot read") and "missing.jsonl" in err
    rc, _, err = run_score(capsys, "exact_match", write_jsonl(tmp_path / "e.jsonl", ["", " "]))
    assert rc == 2 and "no answers to score" in err


def test_real_process(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"prediction": "helo", "answers": ["hello", "xyz"]},
        {"prediction": "STOP", "answer": "stop"},
    ])
    cmd = [sys.executable, "-m", "lifelong.cli", "score", "--metric", "anls", "--predictions", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0.900000 2"  # (0.8 + 1.0) / 2
    bad = subprocess.run(cmd[:-1] + [str(write_jsonl(tmp_path / "b.jsonl", ["{"]))], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "line 1" in bad.stderr
