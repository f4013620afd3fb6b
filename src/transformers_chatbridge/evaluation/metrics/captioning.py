"""CIDEr-D and BLEU computed exactly as pycocoevalcap's ``Cider`` and ``Bleu(4)`` do, on already tokenised text.

Both functions take one tokenised hypothesis per sample and a list of tokenised references per sample (strings of
space-separated tokens, e.g. from :func:`~transformers_chatbridge.evaluation.metrics.tokenization.ptb_tokenize`). They mirror the
arithmetic of ``pycocoevalcap/cider/cider_scorer.py`` and ``pycocoevalcap/bleu/bleu_scorer.py`` step by step,
including their quirks (see the docstrings), so that the scores agree to floating-point precision.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

__all__ = ["bleu_scores", "cider_d_scores"]


def _ngram_counts(sentence: str, n: int) -> dict[tuple[str, ...], int]:
    words = sentence.split()
    counts: dict[tuple[str, ...], int] = defaultdict(int)
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i : i + k])] += 1
    return counts


def _check(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} predictions but {len(references)} reference lists")
    if not hypotheses:
        raise ValueError("no samples to score")
    for refs in references:
        if isinstance(refs, str) or len(refs) == 0:
            raise ValueError("every sample needs a non-empty list of reference strings")


def cider_d_scores(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], n: int = 4, sigma: float = 6.0
) -> tuple[float, list[float]]:
    """CIDEr-D as pycocoevalcap's ``Cider().compute_score`` computes it; returns ``(corpus score, per-sample scores)``.

    * document frequencies: for each n-gram, the number of samples whose references (any of them) contain it;
      idf = ``log(#samples) - log(max(1, df))``, so the score depends on the whole evaluated set;
    * each sample's score: for every reference, per n-gram order the cosine of tf-idf vectors with the hypothesis
      weights clipped at the reference weights (``min(h, r) * r``), times the Gaussian length penalty
      ``exp(-(len_h - len_r)^2 / (2 sigma^2))``; averaged over the n orders and over the references, times 10;
    * as in pycocoevalcap, the "length" used by the penalty is the number of *bigrams* of a sentence (it counts the
      term frequencies of the order-2 n-grams), not its number of words;
    * the corpus score is the mean of the per-sample scores.
    """
    _check(hypotheses, references)
    crefs = [[_ngram_counts(ref, n) for ref in refs] for refs in references]
    ctest = [_ngram_counts(hyp, n) for hyp in hypotheses]

    document_frequency: dict[tuple[str, ...], float] = defaultdict(float)
    for refs in crefs:
        for ngram in {ngram for ref in refs for ngram in ref}:
            document_frequency[ngram] += 1
    ref_len = math.log(float(len(crefs)))

    def counts2vec(counts):
        vec = [defaultdict(float) for _ in range(n)]
        norm = [0.0] * n
        length = 0
        for ngram, term_freq in counts.items():
            df = math.log(max(1.0, document_frequency.get(ngram, 0.0)))
            order = len(ngram) - 1
            vec[order][ngram] = float(term_freq) * (ref_len - df)
            norm[order] += vec[order][ngram] ** 2
            if order == 1:
                length += term_freq
        return vec, [math.sqrt(x) for x in norm], length

    def sim(vec_hyp, vec_ref, norm_hyp, norm_ref, length_hyp, length_ref):
        delta = float(length_hyp - length_ref)
        val = [0.0] * n
        for order in range(n):
            for ngram, weight in vec_hyp[order].items():
                ref_weight = vec_ref[order].get(ngram, 0.0)
                val[order] += min(weight, ref_weight) * ref_weight
            if norm_hyp[order] != 0 and norm_ref[order] != 0:
                val[order] /= norm_hyp[order] * norm_ref[order]
            val[order] *= math.e ** (-(delta**2) / (2 * sigma**2))
        return val

    scores = []
    for test, refs in zip(ctest, crefs):
        vec, norm, length = counts2vec(test)
        total = [0.0] * n
        for ref in refs:
            vec_ref, norm_ref, length_ref = counts2vec(ref)
            total = [a + b for a, b in zip(total, sim(vec, vec_ref, norm, norm_ref, length, length_ref))]
        scores.append(sum(total) / n / len(refs) * 10.0)
    return sum(scores) / len(scores), scores


def bleu_scores(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], n: int = 4
) -> tuple[list[float], list[list[float]]]:
    """BLEU-1..n as pycocoevalcap's ``Bleu(n).compute_score`` computes it (``option="closest"``).

    Corpus BLEU: clipped n-gram matches (clipped by the maximum count over a sample's references) and n-gram counts
    are summed over the corpus; the brevity penalty compares the total hypothesis length with the sum, over samples,
    of the reference length closest to each hypothesis (ties: the shorter). pycocoevalcap's smoothing constants are
    kept (``1e-15`` added to matches, ``1e-9`` to counts). Returns ``([bleu_1..bleu_n], per-sample lists)`` where the
    second item holds, per order, the per-sample sentence BLEU pycocoevalcap also returns.
    """
    _check(hypotheses, references)
    small, tiny = 1e-9, 1e-15
    total_testlen = total_reflen = 0
    total_guess, total_correct = [0] * n, [0] * n
    per_sample: list[list[float]] = [[] for _ in range(n)]
    for hyp, refs in zip(hypotheses, references):
        ref_lens, max_counts = [], {}
        for ref in refs:
            ref_lens.append(len(ref.split()))
            for ngram, count in _ngram_counts(ref, n).items():
                max_counts[ngram] = max(max_counts.get(ngram, 0), count)
        testlen = len(hyp.split())
        guess = [max(0, testlen - k + 1) for k in range(1, n + 1)]
        correct = [0] * n
        for ngram, count in _ngram_counts(hyp, n).items():
            correct[len(ngram) - 1] += min(max_counts.get(ngram, 0), count)
        reflen = min((abs(length - testlen), length) for length in ref_lens)[1]
        total_testlen += testlen
        total_reflen += reflen
        for k in range(n):
            total_guess[k] += guess[k]
            total_correct[k] += correct[k]
        bleu = 1.0
        for k in range(n):
            bleu *= (float(correct[k]) + tiny) / (float(guess[k]) + small)
            per_sample[k].append(bleu ** (1.0 / (k + 1)))
        ratio = (testlen + tiny) / (reflen + small)
        if ratio < 1:
            for k in range(n):
                per_sample[k][-1] *= math.exp(1 - 1 / ratio)

    bleus, bleu = [], 1.0
    for k in range(n):
        bleu *= float(total_correct[k] + tiny) / (total_guess[k] + small)
        bleus.append(bleu ** (1.0 / (k + 1)))
    ratio = (total_testlen + tiny) / (total_reflen + small)
    if ratio < 1:
        bleus = [b * math.exp(1 - 1 / ratio) for b in bleus]
    return bleus, per_sample
