"""Benchmark answer metrics, each rule with a case worked out by hand; and the contract every answer metric keeps."""
import pytest

from lifelong.evaluation.benchmark_metrics import (
    VIZWIZ_PUNCTUATION,
    anls,
    bbox_iou50,
    box_iou,
    choice_letter,
    levenshtein,
    mc_letter,
    parse_box,
    parse_options,
    vizwiz_accuracy,
    vqa_accuracy,
    vqa_normalize,
)
from lifelong.evaluation.scoring import ANSWER_METRICS, register, score

# One reference each metric reads as an ordinary, non-empty answer (for the contract tests).
TYPICAL_REFERENCE = {
    "exact_match": "cat",
    "token_f1": "red circle",
    "vqa_accuracy": ["2"] * 10,
    "vizwiz_accuracy": ["unanswerable"] * 5 + ["blue"] * 5,
    "mc_letter": "A",
    "bbox_iou50": "[0.1, 0.2, 0.5, 0.6]",
    "anls": "STOP",
}


# ---- contract: every registered metric ------------------------------------------------------------------------

def test_every_metric_has_a_contract_row():
    assert set(TYPICAL_REFERENCE) == set(ANSWER_METRICS)


@pytest.mark.parametrize("name", sorted(ANSWER_METRICS))
def test_metric_contract(name):
    fn, ref = ANSWER_METRICS[name], TYPICAL_REFERENCE[name]
    refs = ref if isinstance(ref, list) else [ref]
    # The reference itself scores 1, with or without a question; an empty answer scores 0.
    assert fn(refs[0], ref) == 1.0
    assert fn(refs[0], ref, question="Which one? A. cat B. dog") == 1.0
    for empty in ["", "   ", "\n"]:
        assert fn(empty, ref) == 0.0
    value = fn("something else entirely", ref)
    assert isinstance(value, float) and 0.0 <= value <= 1.0
    with pytest.raises(ValueError):
        fn("x", [])


def test_register_refuses_a_metric_without_question():
    with pytest.raises(TypeError, match="question"):
        register("no_question")(lambda prediction, references: 0.0)
    assert "no_question" not in ANSWER_METRICS


def test_score_passes_questions():
    q = "Pick one.\nA. cat\nB. dog"
    assert score("mc_letter", ["dog", "cat"], ["B", "B"], [q, q]) == pytest.approx(0.5)
    assert score("mc_letter", ["dog"], ["B"]) == 0.0  # without the options "dog" gives no letter
    with pytest.raises(ValueError):
        score("mc_letter", ["dog"], ["B"], [q, q])


# ---- vqa_accuracy ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("matches, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_vqa_consensus_over_ten_humans(matches, expected):
    # m matching humans of 10: each of the m left out leaves m-1 matches, each of the 10-m leaves m.
    # m=1: (1*0 + 9*1/3)/10 = .3; m=2: (2*1/3 + 8*2/3)/10 = .6; m=3: (3*2/3 + 7*1)/10 = .9; m=4: 1.
    humans = ["yes"] * matches + ["no"] * (10 - matches)
    assert vqa_accuracy("yes", humans) == pytest.approx(expected)


def test_vqa_consensus_other_counts():
    # 3 humans, 2 match: leave out a match -> 1/3 (twice); leave out the other -> 2/3; mean 4/9.
    assert vqa_accuracy("cat", ["cat", "cat", "dog"]) == pytest.approx(4 / 9)
    # A lone reference is the agreed answer.
    assert vqa_accuracy("Cat.", "cat") == 1.0
    assert vqa_accuracy("dog", "cat") == 0.0


@pytest.mark.parametrize(
    "raw, normal",
    [
        ("Yes.", "yes"),                     # a period not before a digit goes
        ("3.5", "3.5"),                      # ... one before a digit stays
        ("red/blue", "red blue"),            # punctuation touching no space becomes a space
        ("yes, it is", "yes it is"),         # "," touches a space: deleted
        ("(red)", "red"),                    # "(" and ")" touch no space: spaces, then split away
        ("1,000 dogs", "1000 dogs"),         # digit,digit anywhere: every punctuation mark deleted
        ("hello-world", "hello-world"),      # "-" is not VQA punctuation
        ("  Two\n", "2"),                    # newline and ends stripped; number words become digits
        ("none", "0"),
        ("ten", "10"),
        ("eleven", "eleven"),                # only zero..ten (and none) are mapped
        ("The red ball", "red ball"),        # articles removed ...
        ("A", ""),                           # ... always, as the benchmark does
        ("dont", "don't"),                   # a contraction without its apostrophe gets it back
        ("isnt it", "isn't it"),
        ("don't", "don t"),                  # "'" is VQA punctuation: spaced (official behaviour)
        ("ITS", "its"),                      # ordinary words are not contractions
        ("what's that?", "what s that"),
    ],
)
def test_vqa_normalisation(raw, normal):
    assert vqa_normalize(raw) == normal


def test_vqa_accuracy_normalises_both_sides_and_refuses_empty():
    # 4 humans, all "2" once normalised: every leave-one-out subset holds 3 matches -> 1.0
    assert vqa_accuracy("Two.", ["2", "two", "2", "2."]) == 1.0
    assert vqa_accuracy("A", ["a", "a", "a"]) == 0.0  # "a" normalises to nothing: an empty answer
    assert vqa_accuracy("", [""] * 10) == 0.0


# ---- vizwiz_accuracy ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "raw, normal",
    [
        ("don't know", "don't know"),       # "'" is not VizWiz punctuation
        ("time: 5", "time: 5"),             # nor is ":"
        ("hello-world", "hello world"),     # "-" is
        ("wow!", "wow"),                    # and "!" ("!" touches no space: space, then split away)
        ("Unanswerable.", "unanswerable"),
        ("{red}", "red"),
    ],
)
def test_vizwiz_normalisation(raw, normal):
    assert vqa_normalize(raw, VIZWIZ_PUNCTUATION) == normal


def test_vizwiz_accuracy():
    humans = ["unanswerable"] * 3 + ["white"] * 7
    # 3 of 10 said unanswerable: (3 * 2/3 + 7 * 1) / 10 = 0.9
    assert vizwiz_accuracy("Unanswerable", humans) == pytest.approx(0.9)
    assert vizwiz_accuracy("white.", humans) == 1.0
    assert vizwiz_accuracy("black", humans) == 0.0
    assert vizwiz_accuracy("don't know", ["don't know"] * 10) == 1.0
    assert vqa_accuracy("don't know", ["dont know"] * 10) == 0.0  # VQA spaces the apostrophe: "don t know"
    assert vizwiz_accuracy("dont know", ["don't know"] * 10) == 1.0  # contraction restored


# ---- mc_letter ------------------------------------------------------------------------------------------------

SQA = "Which animal is a mammal?\nContext: none\nA. whale\nB. shark\nC. tiger shark\nAnswer with the option's letter."


def test_parse_options_line_and_inline():
    assert parse_options(SQA) == {"A": "whale", "B": "shark", "C": "tiger shark"}
    assert parse_options("Options: (A) red (B) light blue\nAnswer:") == {"A": "red", "B": "light blue"}
    assert parse_options("(A) red\n(B) blue") == {"A": "red", "B": "blue"}
    assert parse_options("A) red\nB) blue") == {"A": "red", "B": "blue"}
    assert parse_options("What is it?") == {}
    assert parse_options("A. one option only") == {}
    assert parse_options("A. red\nC. blue") == {}  # not lettered from A in order
    assert parse_options(None) == {}


@pytest.mark.parametrize(
    "prediction, letter",
    [
        ("B", "B"), ("b", "B"), ("B.", "B"), ("(B)", "B"), ("[B]", "B"), (" B) ", "B"),  # the whole answer
        ("B. shark", "B"), ("(b) shark", "B"), ("B: shark", "B"),                       # a leading marked letter
        ("The answer is B.", "B"), ("Answer: (B)", "B"), ("I pick option B", "B"),      # said in a sentence
        ("shark", "B"), ("A shark.", "B"),                                              # an option's text
        ("It is a tiger shark", "C"),                                                   # only C's text occurs whole
        ("whale or shark", None),                                                       # two options' texts
        ("the answer is blue", None),                                                   # lower-case: not a letter
        ("D", None),                                                                    # not one of the options
        ("", None),
    ],
)
def test_choice_letter(prediction, letter):
    assert choice_letter(prediction, parse_options(SQA)) == letter


def test_mc_letter_scores():
    assert mc_letter("The answer is A.", "A", question=SQA) == 1.0
    assert mc_letter("whale", "A", question=SQA) == 1.0
    assert mc_letter("shark", "A", question=SQA) == 0.0
    assert mc_letter("", "A", question=SQA) == 0.0
    assert mc_letter("A", "whale", question=SQA) == 1.0  # a reference given as option text
    assert mc_letter("(C)", "C. tiger shark", question=SQA) == 1.0
    # Without options a letter is still a letter; an unreadable reference falls back to exact_match.
    assert mc_letter("(b)", "B") == 1.0
    assert mc_letter("red", "Red.") == 1.0


# ---- bbox_iou50 -----------------------------------------------------------------------------------------------

def test_box_iou_by_hand():
    # [0,0,2,2] and [1,0,3,2]: intersection 1x2 = 2, union 4 + 4 - 2 = 6
    assert box_iou((0, 0, 2, 2), (1, 0, 3, 2)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert box_iou((0, 0, 1, 1), (1, 0, 2, 1)) == 0.0  # touching edges
    assert box_iou((2, 2, 1, 1), (2, 2, 1, 1)) == 0.0  # inverted corners: no area


def test_parse_box():
    assert parse_box("[0.12, 0.3, 0.5, 0.75]") == (0.12, 0.3, 0.5, 0.75)
    assert parse_box("The box is (10,20),(110,220).") == (10, 20, 110, 220)
    assert parse_box("[.5, 1e2, 3, 4, 5]") == (0.5, 100.0, 3.0, 4.0)
    assert parse_box("[0.1, 0.2, 0.3]") is None


def test_bbox_iou50():
    # [0,0,4,8] vs [0,0,4,4]: intersection 16, union 32 -> exactly 0.5: counts (>=)
    assert bbox_iou50("[0, 0, 4, 4]", "[0, 0, 4, 8]") == 1.0
    ref = "[0.0, 0.0, 0.4, 0.5]"
    # vs [0,0,.4,.3]: .12 / .2 = .6 -> yes; vs [0,0,.4,.24]: .096 / .2 = .48 -> no
    assert bbox_iou50("[0.0, 0.0, 0.4, 0.3]", ref) == 1.0
    assert bbox_iou50("[0.0, 0.0, 0.4, 0.24]", ref) == 0.0
    # pixel boxes: [100,100,300,300] vs [150,100,350,300]: 150*200 / (40000+40000-30000) = 0.6
    assert bbox_iou50("[100, 100, 300, 300]", "[150, 100, 350, 300]") == 1.0
    assert bbox_iou50("no box here", ref) == 0.0
    assert bbox_iou50("[0, 0, 0.4, 0.5]", ["[0.5, 0.5, 1, 1]", ref]) == 1.0  # best over references


# ---- anls -----------------------------------------------------------------------------------------------------

def test_levenshtein():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert levenshtein("abc", "abc") == 0
    assert levenshtein("flaw", "lawn") == 2


def test_anls_by_hand():
    assert anls("  STOP  ", "stop") == 1.0                         # case and ends do not count
    assert anls("new  york", "New York") == 1.0                    # runs of spaces are one
    assert anls("helo", "hello") == pytest.approx(0.8)            # NL = 1/5
    assert anls("kitten", "sitting") == pytest.approx(1 - 3 / 7)  # NL = 3/7 < 0.5
    assert anls("abcd", "abef") == 0.0                             # NL = 2/4 = 0.5: not below the threshold
    assert anls("helo", ["xyz", "hello"]) == pytest.approx(0.8)   # best over references
    assert anls("", "") == 1.0
