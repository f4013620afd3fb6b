"""CIDEr-D as pycocoevalcap computes it, with a pure-Python PTB tokenisation (no Java). Load with
``transformers_chatbridge.evaluation.metrics.load_metric("cider")`` or ``evaluate.load(<path of this file or folder>)``."""

import datasets
import evaluate

from transformers_chatbridge.evaluation.metrics.captioning import cider_d_scores
from transformers_chatbridge.evaluation.metrics.tokenization import ptb_tokenize

_DESCRIPTION = """CIDEr-D (Vedantam et al., 2015) exactly as pycocoevalcap's `Cider` computes it: n-grams up to 4,
tf-idf weights with document frequencies taken over the references of the evaluated set, clipping, a Gaussian length
penalty (sigma 6) and the 10x factor. Texts are tokenised as pycocoevalcap's PTBTokenizer does (lowercase, PTB
splitting, punctuation removed) in Python. The score depends on the whole evaluated set (idf), so compute it on the
full set at once."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): one generated caption per sample.
    references (`list[list[str]]`): the reference captions of each sample (one or more).
    tokenize (`bool`, defaults to `True`): PTB-tokenise both sides first; `False` for already tokenised text.
    return_scores (`bool`, defaults to `False`): also return the per-sample scores as `cider_scores`.
Returns:
    `{"cider": float}` (and `"cider_scores": list[float]`).
Example:
    >>> cider = load_metric("cider")
    >>> cider.compute(predictions=["a dog runs"], references=[["a dog is running", "the dog runs"]])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Cider(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Vedantam, Zitnick, Parikh. CIDEr: Consensus-based Image Description Evaluation. CVPR 2015.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
            ),
            reference_urls=["https://github.com/salaniz/pycocoevalcap"],
        )

    def _compute(self, predictions, references, tokenize=True, return_scores=False):
        if tokenize:
            predictions = [ptb_tokenize(p) for p in predictions]
            references = [[ptb_tokenize(r) for r in refs] for refs in references]
        score, scores = cider_d_scores(predictions, references)
        result = {"cider": float(score)}
        if return_scores:
            result["cider_scores"] = [float(s) for s in scores]
        return result
