"""BLEU-1..4 as pycocoevalcap's `Bleu(4)` computes it, with a pure-Python PTB tokenisation (no Java). Load with
``transformers_chatbridge.evaluation.metrics.load_metric("bleu4")`` or ``evaluate.load(<path of this file or folder>)``."""

import datasets
import evaluate

from transformers_chatbridge.evaluation.metrics.captioning import bleu_scores
from transformers_chatbridge.evaluation.metrics.tokenization import ptb_tokenize

_DESCRIPTION = """Corpus BLEU-1..4 exactly as pycocoevalcap's `Bleu(4)` computes it: clipped n-gram precisions summed
over the corpus, brevity penalty with the reference length closest to each hypothesis ("closest"), pycocoevalcap's
smoothing constants. Texts are tokenised as pycocoevalcap's PTBTokenizer does (lowercase, PTB splitting, punctuation
removed) in Python."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): one generated caption per sample.
    references (`list[list[str]]`): the reference captions of each sample (one or more).
    tokenize (`bool`, defaults to `True`): PTB-tokenise both sides first; `False` for already tokenised text.
Returns:
    `{"bleu_1": float, "bleu_2": float, "bleu_3": float, "bleu_4": float}`.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Bleu4(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Papineni et al. BLEU: a Method for Automatic Evaluation of Machine Translation. ACL 2002.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
            ),
            reference_urls=["https://github.com/salaniz/pycocoevalcap"],
        )

    def _compute(self, predictions, references, tokenize=True):
        if tokenize:
            predictions = [ptb_tokenize(p) for p in predictions]
            references = [[ptb_tokenize(r) for r in refs] for refs in references]
        bleus, _ = bleu_scores(predictions, references, n=4)
        return {f"bleu_{k + 1}": float(b) for k, b in enumerate(bleus)}
