"""Accuracy of classes read off generated text (ESC-50 style). Load with
``transformers_chatbridge.evaluation.metrics.load_metric("classification_accuracy")`` or ``evaluate.load(<path>)``."""

import datasets
import evaluate

from transformers_chatbridge.evaluation.metrics.text import match_class

_DESCRIPTION = """Each generated answer is mapped to a class (`transformers_chatbridge.evaluation.metrics.text.match_class`):
after normalisation (lowercase, punctuation and articles removed, `_`/`-`/`/` read as spaces), an exact class-name
match wins; else the longest class name contained in the answer as whole words (ties: first in the answer, then first
in `class_names`); else no class, which counts as wrong. Accuracy is the fraction mapped to the reference class."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): generated answers.
    references (`list[str]`): the true class name of each sample (must be one of `class_names`).
    class_names (`list[str]`): all class names.
    return_predicted_classes (`bool`, defaults to `False`): also return the class each answer was mapped to
        (`None` where none) as `predicted_classes`.
Returns:
    `{"accuracy": float}` in [0, 1].
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ClassificationAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, class_names=None, return_predicted_classes=False):
        if not class_names:
            raise ValueError("classification_accuracy needs `class_names`")
        class_names = list(class_names)
        unknown = sorted(set(references) - set(class_names))
        if unknown:
            raise ValueError(f"references not in class_names: {unknown}")
        predicted = [match_class(p, class_names) for p in predictions]
        correct = [p is not None and p == r for p, r in zip(predicted, references)]
        result = {"accuracy": sum(correct) / len(correct) if correct else 0.0}
        if return_predicted_classes:
            result["predicted_classes"] = predicted
        return result
