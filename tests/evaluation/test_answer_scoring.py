"""Answer metrics: normalised exact match and SQuAD-style token F1, by hand."""
import math

import pytest

from lifelong.evaluation.scoring import ANSWER_METRICS, exact_match, normalize_answer, score, token_f1


@pytest.mark.parametrize(
    "pred, ref",
    [
        ("Two.", "2"),
        ("the red circle", "red circle"),
        ("An Apple!", "apple"),
        ("  Yes  ", "yes"),
        ("twenty", "20"),
        ("zero", "0"),
        ("don't", "dont"),
        ("It's a \u201cdog\u201d", "its dog"),
        ("red-circle", "red circle"),
        ("3.5", "3.5"),
        ("1,000", "1,000"),
        ("The answer is: seven", "answer is 7"),
    ],
)
def test_exact_match_normalisation(pred, ref):
    assert exact_match(pred, ref) == 1.0


@pytest.mark.parametrize("pred, ref", [("yes", "no"), ("3.5", "35"), ("red circle", "circle red"), ("two", "22"), ("", "a dog")])
def test_exact_match_misses(pred, ref):
    assert exact_match(pred, ref) == 0.0


def test_normalize_answer():
    assert normalize_answer("The  THREE   blue-ish cubes, an apple.") == "3 blue ish cubes apple"
    assert normalize_answer("") == ""


def test_multiple_references_take_the_best():
    assert exact_match("blue", ["red", "Blue!"]) == 1.0
    assert token_f1("red square", ["blue circle", "red circle"]) == pytest.approx(0.5)


def test_token_f1_by_hand():
    # pred -> [red, circle, on, left]; gold -> [red, square, on, right]; common {red, on} = 2
    # P = 2/4, R = 2/4, F1 = 0.5
    assert token_f1("a red circle on the left", "the red square on the right") == pytest.approx(0.5)
    # pred [red, red, circle], gold [red, circle, circle, square]: multiset overlap red:1 + circle:1 = 2
    # P = 2/3, R = 2/4, F1 = 2 * (1/3) / (7/6) = 4/7
    assert token_f1("red red circle", "red circle circle square") == pytest.approx(4 / 7)
    # Number words are normalised before comparing: [2, cats] vs [2, cats, sleeping] -> P = 1, R = 2/3, F1 = 0.8
    assert token_f1("Two cats", "2 cats sleeping") == pytest.approx(0.8)
    assert token_f1("dog", "cat") == 0.0
    assert token_f1("Two.", "2") == 1.0


def test_token_f1_empty_answers():
    assert token_f1("", "") == 1.0
    assert token_f1("the", "") == 1.0  # only an article: empty after normalisation
    assert token_f1("", "cat") == 0.0
    assert token_f1("cat", "") == 0.0


def test_score_batch_and_registry():
    assert set(ANSWER_METRICS) >= {"exact_match", "token_f1"}
    assert score("exact_match", ["2", "x"], ["two", "y"]) == pytest.approx(0.5)
    assert score("token_f1", ["a red circle on the left", "cat"], ["the red square on the right", ["dog", "cat"]]) == pytest.approx(0.75)
    assert math.isnan(score("exact_match", [], []))
    with pytest.raises(KeyError):
        score("bleu", ["a"], ["a"])
    with pytest.raises(ValueError):
        score("exact_match", ["a"], [])
    with pytest.raises(ValueError):
        exact_match("a", [])
