"""VQA accuracy with the answer normalisation of the official VQA evaluation (re-implemented from its behaviour).

Normalisation (:func:`normalize_vqa_answer`), applied to the prediction and to every human answer:

1. newlines and tabs become spaces, surrounding whitespace is stripped, text is lowercased;
2. punctuation: for each of ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !`` the character is deleted when it touches a
   space somewhere in the answer or when the answer contains a digit-comma-digit group (``1,000``), and is replaced by
   a space otherwise (``hot-dog`` -> ``hot dog``); then every period not followed by a digit is deleted (``yes.`` ->
   ``yes``, ``3.5`` is kept); apostrophes and other characters are kept;
3. words: number words ``none zero one ... ten`` become digits (``none`` -> ``0``), the articles ``a an the`` are dropped,
   and contractions written without apostrophe get it back (``dont`` -> ``don't``, ``whats`` -> ``what's``,
   ``couldntve`` -> ``couldn't've``); forms that are also ordinary words (``its well ill hell shell were wed shed lets
   id``) are left alone.

Accuracy of one answer against ``N`` human answers (``N = 10`` in VQA v2): the mean, over the ``N`` ways of leaving one
human out, of ``min(#matching remaining humans / 3, 1)``; e.g. 2 of 10 humans agreeing gives 0.6, 3 or more give 1.0.
With a single human answer the score is 1.0 on a match, else 0.0.

Difference from the official script: it normalises only when the human answers disagree (and then the human answers
only for punctuation); here both sides are always fully normalised, so ``"yes."`` matches ten humans saying ``yes``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

__all__ = ["normalize_vqa_answer", "vqa_accuracy_scores"]

_PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
_NUMBER_WORDS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
_NUMBER_WORDS["none"] = "0"
_ARTICLES = {"a", "an", "the"}

# Contractions with their apostrophes; every spelling that drops some or all of the apostrophes maps back to them.
_CONTRACTIONS = """
ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't haven't he'd he'd've
he'll he's how'd how'll how's i'd i'd've i'll i'm i've isn't it'd it'd've it'll it's let's ma'am mightn't
mightn't've might've mustn't must've needn't not've o'clock oughtn't shan't she'd she'd've she'll she's
should've shouldn't shouldn't've somebody'd somebody'd've somebody'll somebody's someone'd someone'd've someone'll
someone's something'd something'd've something'll that's there'd there'd've there're there's they'd they'd've they'll
they're they've 'twas wasn't we'd we'd've we'll we're we've weren't what'll what're what's what've when's where'd
where's where've who'd who'd've who'll who's who've why'll why're why's won't would've wouldn't wouldn't've y'all
y'all'll y'all'd've you'd you'd've you'll you're you've
""".split()
# Apostrophe-less spellings that are also ordinary words: not rewritten.
_AMBIGUOUS = {"its", "well", "ill", "hell", "shell", "were", "wed", "shed", "lets", "id"}


def _contraction_map() -> dict[str, str]:
    mapping = {}
    for full in _CONTRACTIONS:
        pieces = full.split("'")
        for keep in itertools.product((True, False), repeat=len(pieces) - 1):
            variant = pieces[0] + "".join(("'" if k else "") + p for k, p in zip(keep, pieces[1:]))
            if variant != full and variant not in _AMBIGUOUS:
                mapping[variant] = full
    return mapping


_CONTRACTION_MAP = _contraction_map()


def normalize_vqa_answer(answer: str) -> str:
    """Normalise an answer the way the official VQA evaluation does (see the module docstring)."""
    text = answer.replace("\n", " ").replace("\t", " ").strip().lower()
    out = text
    has_digit_comma_digit = _DIGIT_COMMA_DIGIT.search(text) is not None
    for p in _PUNCTUATION:
        if p + " " in text or " " + p in text or has_digit_comma_digit:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    out = _PERIOD_NOT_BEFORE_DIGIT.sub("", out)
    words = []
    for word in out.split():
        word = _NUMBER_WORDS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTION_MAP.get(word, word))
    return " ".join(words)


def _single_accuracy(prediction: str, answers: Sequence[str]) -> float:
    pred = normalize_vqa_answer(prediction)
    matches = [normalize_vqa_answer(a) == pred for a in answers]
    if len(answers) == 1:
        return float(matches[0])
    total = sum(matches)
    # Leave human i out: the others match `total - matches[i]` times.
    return sum(min(1.0, (total - m) / 3.0) for m in matches) / len(matches)


def vqa_accuracy_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """Per-question VQA accuracy of each prediction against its list of human answers."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists")
    scores = []
    for prediction, answers in zip(predictions, references):
        if isinstance(answers, str) or len(answers) == 0:
            raise ValueError("every question needs a non-empty list of human answers")
        scores.append(_single_accuracy(prediction, answers))
    return scores
