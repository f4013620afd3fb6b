"""VQA accuracy (official VQA answer normalisation, 10-choose-9 averaging). Load with
``transformers_chatbridge.evaluation.metrics.load_metric("vqa_accuracy")`` or ``evaluate.load(<path of this file or folder>)``."""

import datasets
import evaluate

from transformers_chatbridge.evaluation.metrics.vqa import vqa_accuracy_scores

_DESCRIPTION = """VQA accuracy (Antol et al., 2015): both the prediction and the human answers are normalised as the
official VQA evaluation does (punctuation, number words to digits, articles dropped, contractions restored); an
answer scores the mean, over the ways of leaving one human out, of min(#matching remaining humans / 3, 1). See
`transformers_chatbridge.evaluation.metrics.vqa` for the exact rules."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): one answer per question.
    references (`list[list[str]]`): the human answers of each question (10 in VQA v2).
    return_scores (`bool`, defaults to `False`): also return the per-question scores as `vqa_accuracy_scores`.
Returns:
    `{"vqa_accuracy": float}` in [0, 1] (and `"vqa_accuracy_scores": list[float]`).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class VqaAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Antol et al. VQA: Visual Question Answering. ICCV 2015.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
            ),
            reference_urls=["https://visualqa.org/evaluation.html"],
        )

    def _compute(self, predictions, references, return_scores=False):
        scores = vqa_accuracy_scores(predictions, references)
        result = {"vqa_accuracy": sum(scores) / len(scores) if scores else 0.0}
        if return_scores:
            result["vqa_accuracy_scores"] = scores
        return result
