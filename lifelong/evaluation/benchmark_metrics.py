"""Benchmark answer metrics: VQAv2, VizWiz, multiple choice, grounding boxes and ANLS, as the benchmarks define them.

Each is an answer metric of :mod:`lifelong.evaluation.answers` (same
signature, registered in the same ``ANSWER_METRICS``), written from the
benchmarks' published definitions and public evaluation code:

``vqa_accuracy`` — VQAv2 (also TextVQA, OK-VQA). The references are the human
answers (ten in VQAv2). Accuracy against n humans is the mean, over the n
leave-one-out subsets of n - 1 humans, of ``min(#humans in the subset who gave
the prediction / 3, 1)``; with ten humans, 1, 2, 3 and 4+ matches give 0.3,
0.6, 0.9 and 1.0. A lone reference (the usual case in an instruction dataset)
is taken as the agreed answer: 1.0 on a match, else 0 (leave-one-out over one
human would score every answer 0). Normalisation, applied to the prediction
and to every human answer (as the TextVQA evaluator does; the official VQAv2
code gives the human answers the punctuation step only, but they are released
lowercased, with digits and without articles, so the other steps keep them):

1. newlines and tabs become spaces; ends are stripped;
2. punctuation ``; : / ' [ ] " ( ) = + \\ _ > < @ ` , ?``: each character is
   deleted when it touches a space somewhere in the answer or when the answer
   holds a digit-comma-digit (``1,000``), else it becomes a space
   (``red/blue`` -> ``red blue``, ``yes, it is`` -> ``yes it is``). A ``'``
   is punctuation too, so ``don't`` reads ``don t`` (as in the official code);
3. a ``.`` is deleted unless a digit follows it (``3.5`` stays, ``yes.`` -> ``yes``);
4. lowercase; split on whitespace; ``none`` and ``zero`` .. ``ten`` become
   digits; the articles ``a an the`` are removed (always, as the benchmark
   does: ``a`` alone normalises to nothing); a contraction written without
   its apostrophe gets it back (``dont`` -> ``don't``, ``isnt`` -> ``isn't``).

A prediction that normalises to nothing scores 0.

``vizwiz_accuracy`` — VizWiz-VQA: the same consensus and steps, with
VizWiz's punctuation set ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !`` (no
``'`` and no ``:``; ``-`` and ``!`` added), so ``don't`` stays ``don't``.
"unanswerable" is an ordinary answer of the human set: a model that replies
``Unanswerable.`` is right where three or more humans said so.

``mc_letter`` — multiple choice (ScienceQA style). The options are read from
the ``question``: lines ``A. text`` / ``(A) text`` / ``A) text`` / ``A: text``,
or inline ``(A) text (B) text``. The prediction's letter is the first that
applies of: the whole answer is a letter (``B``, ``b``, ``B.``, ``(B)``); the
answer starts with a marked letter (``B. dog``, ``(B) dog``); it says ``answer
is B`` / ``answer: (B)`` / ``option B`` (capital letter); its normalised text
equals one option's; exactly one option's text occurs in it as whole words
(one that occurs only inside a longer option's text that occurs too, as
``shark`` in ``tiger shark``, does not count).
When the options are known, a letter that is not one of them does not count.
The reference is read the same way (a letter, or an option's text); a
reference that gives no letter is compared by ``exact_match``. Score 1.0 when
the letters agree.

``bbox_iou50`` — grounding (RefCOCO style): the first four numbers of the
prediction and of the reference are boxes ``[x1, y1, x2, y2]`` (corners:
top-left, bottom-right); 1.0 when their intersection over union is at least
0.5. Both must use the same coordinates — normalised to [0, 1] or pixels, as
the dataset gives them (the image size is not known here to convert one into
the other). A box with x2 <= x1 or y2 <= y1, or fewer than four numbers,
scores 0.

``anls`` — Average Normalized Levenshtein Similarity (ST-VQA, DocVQA): both
texts lowercased, stripped and with runs of whitespace made one space; NL =
edit distance / length of the longer one; the score is ``1 - NL`` when NL <
0.5, else 0; the best over references.
"""
from __future__ import annotations

import re
from typing import Optional

from lifelong.evaluation.answers import References, _as_list, exact_match, normalize_answer, register

# ---- VQA normalisation ----------------------------------------------------------------------------------------

VQA_PUNCTUATION = ";:/'[]\"()=+\\_><@`,?"
VIZWIZ_PUNCTUATION = ";/[]\"{}()=+\\_-><@`,?!"
_VQA_NUMBERS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
_VQA_NUMBERS["none"] = "0"
_VQA_ARTICLES = frozenset({"a", "an", "the"})
# Contractions as the benchmark spells them; a model's apostrophe-less spelling is mapped back to them. Forms
# whose apostrophe-less spelling is an ordinary word (its, well, were, shed, hell, lets, id) are left out.
_CONTRACTED = """
ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't haven't he'd he'd've
he's how'd how'll how's isn't it'd it'd've it'll ma'am mightn't mightn't've might've mustn't must've needn't not've
o'clock oughtn't shan't should've shouldn't shouldn't've somebody'll somebody's someone'd someone'd've someone'll
someone's something'd something'd've something'll that's there'd there'd've there're there's they'd they'd've
they'll they're they've 'twas wasn't we've weren't what'll what're what's what've when's where'd where's where've
who'd who'd've who'll who's who've why'll why're why's won't would've wouldn't wouldn't've y'all y'all'll
y'all'd've you'd you'd've you'll you're you've
""".split()
_CONTRACTIONS = {w.replace("'", ""): w for w in _CONTRACTED}
_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")


def vqa_normalize(text: str, punctuation: str = VQA_PUNCTUATION) -> str:
    """``text`` in the VQA evaluation's normal form (steps 1-4 of the module docstring)."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    delete_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for ch in punctuation:
        # The test reads the original text, so whether a character is deleted or spaced does not
        # depend on the characters handled before it.
        touches_space = f"{ch} " in text or f" {ch}" in text
        out = out.replace(ch, "" if delete_all or touches_space else " ")
    out = _PERIOD_NOT_BEFORE_DIGIT.sub("", out)
    words = [_VQA_NUMBERS.get(w, w) for w in out.lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _VQA_ARTICLES)


def consensus_accuracy(prediction: str, humans: list[str]) -> float:
    """VQA consensus of an already-normalised prediction against normalised human answers (see module docstring)."""
    if not prediction:
        return 0.0
    if len(humans) == 1:
        return float(prediction == humans[0])
    matches = sum(h == prediction for h in humans)
    # Leaving out human i: the others hold matches - [human i matched] matching answers.
    return sum(min((matches - (h == prediction)) / 3, 1.0) for h in humans) / len(humans)


@register("vqa_accuracy")
def vqa_accuracy(prediction: str, references: References, question: Optional[str] = None) -> float:
    """VQAv2 accuracy: consensus of the human answers ``references`` (see the module docstring)."""
    humans = [vqa_normalize(r) for r in _as_list(references)]
    return consensus_accuracy(vqa_normalize(prediction), humans)


@register("vizwiz_accuracy")
def vizwiz_accuracy(prediction: str, references: References, question: Optional[str] = None) -> float:
    """VizWiz-VQA accuracy: the VQA consensus with VizWiz's punctuation set (see the module docstring)."""
    humans = [vqa_normalize(r, VIZWIZ_PUNCTUATION) for r in _as_list(references)]
    return consensus_accuracy(vqa_normalize(prediction, VIZWIZ_PUNCTUATION), humans)


# ---- multiple choice ------------------------------------------------------------------------------------------

_OPTION_LINE = re.compile(r"^\s*(?:\(([A-Z])\)|([A-Z])[.):])\s*(\S.*?)\s*$", re.MULTILINE)
_OPTION_INLINE = re.compile(r"\(([A-Z])\)[ \t]*([^\n]*?)\s*(?=\([A-Z]\)|\n|$)")
_WHOLE_LETTER = re.compile(r"^[(\[]?([A-Za-z])[)\].:]?$")
_LEADING_LETTER = re.compile(r"^(?:[(\[]([A-Za-z])[)\]]|([A-Z])[.):])(?:\s|$)")
_SAYS_LETTER = re.compile(r"\b(?i:answer|option|choice)\b\s*(?:is\s*)?:?\s*(?:option\s+)?[(\[]?([A-Z])\b")


def parse_options(question: Optional[str]) -> dict[str, str]:
    """Letter -> option text of the choices listed in ``question`` ({} when there are none).

    One option per line (``A. cat``, ``(A) cat``, ``A) cat``, ``A: cat``) or inline
    (``Options: (A) cat (B) dog``); at least two options, lettered from A in order.
    """
    if not question:
        return {}
    for found in ([(a or b, t) for a, b, t in _OPTION_LINE.findall(question)], _OPTION_INLINE.findall(question)):
        options = {letter: text.strip() for letter, text in found if text.strip()}
        letters = sorted(options)
        if len(letters) >= 2 and letters == [chr(ord("A") + i) for i in range(len(letters))]:
            return options
    return {}


def _option_by_text(answer: str, options: dict[str, str]) -> Optional[str]:
    said = normalize_answer(answer)
    if not said:
        return None
    texts = {letter: normalize_answer(text) for letter, text in options.items()}
    exact = [letter for letter, text in texts.items() if text and text == said]
    if len(exact) == 1:
        return exact[0]
    inside = [letter for letter, text in texts.items() if text and re.search(rf"(?<!\S){re.escape(text)}(?!\S)", said)]
    # "tiger shark" also holds option "shark": an option found only inside a longer found one does not count.
    outer = [a for a in inside if not any(texts[a] != texts[b] and texts[a] in texts[b] for b in inside)]
    return outer[0] if len(outer) == 1 else None


def choice_letter(answer: str, options: dict[str, str]) -> Optional[str]:
    """The option letter ``answer`` gives (upper case), or None; the rules are in the module docstring."""
    text = answer.strip()
    for pattern in (_WHOLE_LETTER, _LEADING_LETTER, _SAYS_LETTER):
        m = pattern.search(text)
        if m:
            letter = next(g for g in m.groups() if g).upper()
            if not options or letter in options:
                return letter
    return _option_by_text(text, options) if options else None


@register("mc_letter")
def mc_letter(prediction: str, references: References, question: Optional[str] = None) -> float:
    """1.0 when the prediction picks the reference's option (letters read as in the module docstring)."""
    options = parse_options(question)
    picked = choice_letter(prediction, options)
    best = 0.0
    for ref in _as_list(references):
        want = choice_letter(ref, options)
        best = max(best, exact_match(prediction, ref) if want is None else float(picked == want))
    return best


# ---- grounding boxes ------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_box(text: str) -> Optional[tuple[float, float, float, float]]:
    """The first four numbers of ``text`` as ``(x1, y1, x2, y2)``, or None when it holds fewer."""
    numbers = _NUMBER.findall(text)
    if len(numbers) < 4:
        return None
    x1, y1, x2, y2 = (float(n) for n in numbers[:4])
    return x1, y1, x2, y2


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes; 0 when either has no area."""
    if a[2] <= a[0] or a[3] <= a[1] or b[2] <= b[0] or b[3] <= b[1]:
        return 0.0
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


IOU_THRESHOLD = 0.5  # RefCOCO's "Acc@0.5": a box is right when it overlaps the reference by half


@register("bbox_iou50")
def bbox_iou50(prediction: str, references: References, question: Optional[str] = None) -> float:
    """1.0 when the predicted box overlaps a reference box with IoU >= 0.5 (see the module docstring)."""
    refs = [parse_box(r) for r in _as_list(references)]
    pred = parse_box(prediction)
    return float(pred is not None and any(ref is not None and box_iou(pred, ref) >= IOU_THRESHOLD for ref in refs))


# ---- ANLS -----------------------------------------------------------------------------------------------------

ANLS_THRESHOLD = 0.5  # ST-VQA's tau: a reading further than this from every reference is a wrong answer, not a typo


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions, each costing 1) between ``a`` and ``b``."""
    if len(a) < len(b):
        a, b = b, a
    row = list(range(len(b) + 1))  # distances from a[:i] to every prefix of b
    for i, ca in enumerate(a, 1):
        prev_diag, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev_diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev_diag + (ca != cb))
    return row[-1]


def _anls_form(text: str) -> str:
    return " ".join(text.strip().lower().split())


@register("anls")
def anls(prediction: str, references: References, question: Optional[str] = None) -> float:
    """ANLS of one answer: best over references of 1 - NL when NL < 0.5, else 0 (see the module docstring)."""
    pred = _anls_form(prediction)
    best = 0.0
    for ref in map(_anls_form, _as_list(references)):
        longest = max(len(pred), len(ref))
        nl = levenshtein(pred, ref) / longest if longest else 0.0
        if nl < ANLS_THRESHOLD:
            best = max(best, 1.0 - nl)
    return best
