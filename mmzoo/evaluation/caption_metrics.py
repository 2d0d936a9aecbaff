"""Caption metrics as defined by the COCO caption evaluation code.

BLEU-1..4 (corpus level, "closest" reference length), CIDEr-D (tf-idf n-gram
cosine with clipping and a Gaussian length penalty, sigma 6, times 10;
document frequencies from the evaluated references) and ROUGE-L (LCS F-measure
with beta 1.2, best reference per image), each reproducing `pycocoevalcap`
(the reference implementation, checked to 1e-6 in the tests) including its
quirks: CIDEr-D's length penalty uses the number of *bigrams*, as the
reference code does.

Captions are compared as whitespace-separated tokens after `normalize_caption`
(lower-case, punctuation removed). The COCO toolkit uses the Java PTB tokenizer
instead; scores on already tokenized, lower-case text are identical.
"""

import math
import re
from collections import Counter

import numpy as np

_PUNCTUATION = re.compile(r"[^\w\s]|_")


def normalize_caption(text):
    """Lower-cases, drops punctuation and collapses whitespace.

    >>> normalize_caption("A Red, CIRCLE!")
    'a red circle'
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def _ngrams(tokens, max_order):
    counts = Counter()
    for n in range(1, max_order + 1):
        for i in range(len(tokens) - n + 1):
            counts[tuple(tokens[i : i + n])] += 1
    return counts


def _prepare(predictions, references):
    if len(predictions) != len(references):
        raise ValueError(
            "`predictions` and `references` must have the same length. Received: "
            f"{len(predictions)} predictions and {len(references)} reference lists"
        )
    if not predictions:
        raise ValueError("Nothing to evaluate. Received: 0 predictions")
    tokenized_refs = []
    for i, refs in enumerate(references):
        if isinstance(refs, (str, bytes)):
            refs = [refs]
        if len(refs) == 0:
            raise ValueError(f"Every prediction needs at least one reference. Received: none for example {i}")
        tokenized_refs.append([normalize_caption(r).split() for r in refs])
    tokenized_preds = [normalize_caption(p).split() for p in predictions]
    return tokenized_preds, tokenized_refs


def corpus_bleu(predictions, references, max_order=4):
    """Corpus BLEU-1..`max_order` as in the COCO caption evaluation.

    Args:
        predictions: list of str, one caption per example.
        references: list of lists of str (one or more references each).
        max_order: int.

    Returns:
        dict `{"bleu_1": float, ..., "bleu_{max_order}": float}`.

    Example:

    >>> corpus_bleu(["a red circle"], [["a red circle", "a circle"]])["bleu_1"]
    0.999999...
    """
    preds, refs = _prepare(predictions, references)
    small, tiny = 1e-9, 1e-15  # the reference code's guards against 0/0
    correct = [0] * max_order
    guess = [0] * max_order
    test_length = ref_length = 0
    for pred, pred_refs in zip(preds, refs):
        max_ref_counts = Counter()
        for ref in pred_refs:
            for ngram, count in _ngrams(ref, max_order).items():
                max_ref_counts[ngram] = max(max_ref_counts[ngram], count)
        length = len(pred)
        # "closest" reference length; ties go to the shorter reference.
        ref_length += min((abs(len(r) - length), len(r)) for r in pred_refs)[1]
        test_length += length
        for ngram, count in _ngrams(pred, max_order).items():
            correct[len(ngram) - 1] += min(max_ref_counts[ngram], count)
        for k in range(max_order):
            guess[k] += max(0, length - k)
    scores = {}
    product = 1.0
    ratio = (test_length + tiny) / (ref_length + small)
    brevity = math.exp(1 - 1 / ratio) if ratio < 1 else 1.0
    for k in range(max_order):
        product *= (correct[k] + tiny) / (guess[k] + small)
        scores[f"bleu_{k + 1}"] = product ** (1.0 / (k + 1)) * brevity
    return scores


def cider_d(predictions, references, sigma=6.0, max_order=4, return_per_example=False):
    """CIDEr-D as in the COCO caption evaluation (`Cider` of pycocoevalcap).

    Document frequencies come from the references being evaluated, so scores
    depend on the whole corpus (evaluate a whole split at once).

    Args:
        predictions: list of str.
        references: list of lists of str.
        sigma: float. Width of the Gaussian length penalty.
        max_order: int.
        return_per_example: bool.

    Returns:
        float corpus score, or `(score, per_example_scores)`.
    """
    preds, refs = _prepare(predictions, references)
    pred_counts = [_ngrams(p, max_order) for p in preds]
    ref_counts = [[_ngrams(r, max_order) for r in rs] for rs in refs]
    document_frequency = Counter()
    for counts in ref_counts:
        document_frequency.update({ngram for c in counts for ngram in c})
    log_num_docs = np.log(float(len(ref_counts)))

    def to_vector(counts):
        vector = [dict() for _ in range(max_order)]
        norm = [0.0] * max_order
        length = 0
        for ngram, term_freq in counts.items():
            n = len(ngram) - 1
            df = np.log(max(1.0, document_frequency[ngram]))
            vector[n][ngram] = float(term_freq) * (log_num_docs - df)
            norm[n] += vector[n][ngram] ** 2
            if n == 1:  # the reference code counts bigrams as "length"
                length += term_freq
        return vector, [np.sqrt(x) for x in norm], length

    def similarity(hyp, ref):
        (vec_h, norm_h, len_h), (vec_r, norm_r, len_r) = hyp, ref
        delta = float(len_h - len_r)
        values = np.zeros(max_order)
        for n in range(max_order):
            for ngram, value in vec_h[n].items():
                ref_value = vec_r[n].get(ngram, 0.0)
                values[n] += min(value, ref_value) * ref_value
            if norm_h[n] != 0 and norm_r[n] != 0:
                values[n] /= norm_h[n] * norm_r[n]
            values[n] *= np.e ** (-(delta**2) / (2 * sigma**2))
        return values

    scores = []
    for counts, counts_refs in zip(pred_counts, ref_counts):
        hyp = to_vector(counts)
        total = np.zeros(max_order)
        for ref in counts_refs:
            total += similarity(hyp, to_vector(ref))
        scores.append(np.mean(total) / len(counts_refs) * 10.0)
    scores = np.array(scores)
    if return_per_example:
        return float(np.mean(scores)), scores
    return float(np.mean(scores))


def _lcs_length(a, b):
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(predictions, references, beta=1.2, return_per_example=False):
    """ROUGE-L as in the COCO caption evaluation: per image, the LCS
    precision and recall maximised over references, combined with `beta`.

    Returns:
        float mean score, or `(score, per_example_scores)`.
    """
    preds, refs = _prepare(predictions, references)
    scores = []
    for pred, pred_refs in zip(preds, refs):
        # The reference splits on single spaces, so an empty caption is one
        # empty token: precision 0, not 0/0.
        candidate = pred or [""]
        lcs = [_lcs_length(r or [""], candidate) for r in pred_refs]
        precision = max(l / len(candidate) for l in lcs)
        recall = max(l / len(r or [""]) for l, r in zip(lcs, pred_refs))
        if precision and recall:
            scores.append(
                (1 + beta**2) * precision * recall / (recall + beta**2 * precision)
            )
        else:
            scores.append(0.0)
    scores = np.array(scores)
    if return_per_example:
        return float(np.mean(scores)), scores
    return float(np.mean(scores))


def caption_metrics(predictions, references):
    """BLEU-1..4, CIDEr-D and ROUGE-L in one dict.

    Args:
        predictions: list of str (bytes are decoded as UTF-8).
        references: list of lists of str.

    Returns:
        dict with `bleu_1` ... `bleu_4`, `cider_d`, `rouge_l`.

    Example:

    ```python
    captions = model.generate(test_images)  # a model with a preprocessor gives strings
    mmzoo.evaluation.caption_metrics(captions, test_references)
    ```
    """
    scores = corpus_bleu(predictions, references)
    scores["cider_d"] = cider_d(predictions, references)
    scores["rouge_l"] = rouge_l(predictions, references)
    return scores
