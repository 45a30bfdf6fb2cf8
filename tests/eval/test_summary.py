"""The README's results summary is generated from the committed comparison files and cannot drift."""
import json
from pathlib import Path

from eval import summary

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_block_is_what_the_result_files_give():
    readme = (ROOT / "README.md").read_text()
    assert summary.readme_block(readme) == summary.summary(), \
        "README results are out of date: run python -m eval.summary --write-readme"


def test_a_stream_summary_reads_its_compare_json(tmp_path):
    (tmp_path / "messy").mkdir()
    (tmp_path / "messy" / "compare.json").write_text(json.dumps({
        "hardware": "a machine", "runs": {"oracle": {"seeds": [0, 1], "avg_acc": 0.81234, "avg_acc_ci95": [0.7, 0.9],
                                                     "forgetting": 0.01, "defects_trained": 0.0}},
        "gate": {"oracle_above_random": {"verdict": "**met** (+0.100)", "passed": True, "difference": 0.1,
                                         "threshold": 0.08}},
        "missing": ["random seed 0"], "stale": []}))
    text = "\n".join(summary.stream_summary("messy", tmp_path))
    assert "| oracle | 0, 1 | 0.812 [0.700, 0.900] | 0.010 | 0.000 |" in text
    assert "- oracle above random: **passed** (difference +0.100, needs ≥ 0.08; **met** (+0.100))" in text
    assert "Not run yet: 1 (strategy, seed) pairs." in text
    assert "no results yet" in "\n".join(summary.stream_summary("clean", tmp_path))


def test_a_folder_of_another_kernel_follows_the_streams(tmp_path):
    """A comparison run into a folder of its own (another kernel's: ``messy-float32``) gets its table after
    the streams'; validation folders hold ablations only and stay out."""
    for folder in ("messy", "messy-float32"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "compare.json").write_text(json.dumps({"hardware": f"{folder} machine", "runs": {}}))
    (tmp_path / "messy-val").mkdir()
    text = summary.summary(tmp_path)
    assert text.index("**clean**") < text.index("**messy**") < text.index("**messy-float32**")
    assert "messy-float32 machine" in text  # its own hardware line
    assert "messy-val" not in text
