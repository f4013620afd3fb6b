"""Normalised exact match and class assignment of generated text (used by ``exact_match`` and
``classification_accuracy``)."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

__all__ = ["exact_match_scores", "match_class", "normalize_text"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION_TABLE = str.maketrans("", "", string.punctuation)


def normalize_text(text: str) -> str:
    """SQuAD-style normalisation: lowercase, delete ASCII punctuation, drop the articles ``a an the``, collapse
    whitespace. ``"The Dog!"`` -> ``"dog"``, ``"U.S.A."`` -> ``"usa"``."""
    text = text.lower().translate(_PUNCTUATION_TABLE)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_scores(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> list[float]:
    """1.0 where the normalised prediction equals the normalised reference (or any of a list of references)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    scores = []
    for prediction, refs in zip(predictions, references):
        refs = [refs] if isinstance(refs, str) else list(refs)
        pred = normalize_text(prediction)
        scores.append(float(any(pred == normalize_text(ref) for ref in refs)))
    return scores


def _normalize_label(text: str) -> str:
    # Class names such as ESC-50's "crackling_fire" or "hand_saw": underscores and hyphens separate words.
    return normalize_text(re.sub(r"[_\-/]", " ", text))


def match_class(answer: str, class_names: Sequence[str]) -> str | None:
    """Map a generated answer to one of ``class_names``, or ``None``.

    Both sides are normalised with :func:`normalize_text` after turning ``_ - /`` into spaces. Rules, in order:

    1. the normalised answer equals a normalised class name -> that class;
    2. otherwise, among the classes whose normalised name occurs in the normalised answer as whole words, the one with
       the longest name; ties go to the name occurring first in the answer, then to the earlier class in
       ``class_names``;
    3. otherwise ``None`` (no class: counted as wrong).
    """
    norm_answer = _normalize_label(answer)
    normalized = [(_normalize_label(name), i, name) for i, name in enumerate(class_names)]
    for norm_name, _, name in normalized:
        if norm_name and norm_answer == norm_name:
            return name
    padded = f" {norm_answer} "
    best = None
    for norm_name, i, name in normalized:
        if not norm_name:
            continue
        pos = padded.find(f" {norm_name} ")
        if pos < 0:
            continue
        key = (-len(norm_name), pos, i)
        if best is None or key < best[0]:
            best = (key, name)
    return None if best is None else best[1]
