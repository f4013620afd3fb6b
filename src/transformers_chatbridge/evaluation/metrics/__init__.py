"""Evaluation metrics as local :mod:`evaluate` modules (no Hub access needed).

Each metric is an ``evaluate.Metric`` script shipped with the package under ``metrics/<name>/<name>.py``;
:func:`load_metric` loads it with ``evaluate.load`` from that path. The scoring logic lives in plain modules
(:mod:`.tokenization`, :mod:`.captioning`, :mod:`.vqa`, :mod:`.text`) that can also be used directly.

Metrics: ``cider`` (CIDEr-D, as pycocoevalcap), ``bleu4`` (BLEU-1..4, as pycocoevalcap), ``vqa_accuracy``,
``exact_match``, ``classification_accuracy``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .captioning import bleu_scores, cider_d_scores
from .text import exact_match_scores, match_class, normalize_text
from .tokenization import ptb_tokenize
from .vqa import normalize_vqa_answer, vqa_accuracy_scores

if TYPE_CHECKING:
    import evaluate

__all__ = [
    "METRIC_NAMES",
    "bleu_scores",
    "cider_d_scores",
    "exact_match_scores",
    "load_metric",
    "match_class",
    "metric_path",
    "normalize_text",
    "normalize_vqa_answer",
    "ptb_tokenize",
    "vqa_accuracy_scores",
]

METRIC_NAMES = ("cider", "bleu4", "vqa_accuracy", "exact_match", "classification_accuracy")


def metric_path(name: str) -> str:
    """Path of the packaged ``evaluate`` script of metric ``name``."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(METRIC_NAMES)}")
    path = Path(__file__).resolve().parent / name / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"metric script {path} is missing from the installed package")
    return str(path)


def load_metric(name: str, **kwargs: Any) -> evaluate.EvaluationModule:
    """Load one of :data:`METRIC_NAMES` with ``evaluate.load`` from its packaged script (works offline)."""
    import evaluate

    return evaluate.load(metric_path(name), **kwargs)
