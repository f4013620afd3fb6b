"""Normalised exact match. Load with ``transformers_chatbridge.evaluation.metrics.load_metric("exact_match")`` or
``evaluate.load(<path of this file or folder>)``."""

import datasets
import evaluate

from transformers_chatbridge.evaluation.metrics.text import exact_match_scores

_DESCRIPTION = """Fraction of predictions equal to their reference after SQuAD-style normalisation: lowercase, ASCII
punctuation deleted, the articles "a", "an", "the" dropped, whitespace collapsed. A sample may have several references
(it counts as correct if it matches any)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): one prediction per sample.
    references (`list[str]` or `list[list[str]]`): the reference, or the acceptable references, of each sample.
Returns:
    `{"exact_match": float}` in [0, 1].
"""

_SINGLE = datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")})
_MULTI = datasets.Features(
    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=[_SINGLE, _MULTI],
        )

    def _compute(self, predictions, references):
        scores = exact_match_scores(predictions, references)
        return {"exact_match": sum(scores) / len(scores) if scores else 0.0}
