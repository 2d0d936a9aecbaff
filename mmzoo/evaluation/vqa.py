"""Visual question answering metrics: exact match and VQA accuracy.

Answers are compared after `normalize_answer`, a VQA-style normalisation:
lower-case, punctuation removed (a decimal point between digits is kept and a
thousands comma between digits dropped, so "2.5" and "1,000" survive as
numbers), the articles "a", "an", "the" removed, the number words "zero" to
"ten" written as digits, whitespace collapsed. It follows the spirit of the
official VQA evaluation script (`vqaEval.py`) but is simpler: apostrophes are
dropped ("don't" -> "dont") instead of mapped through the script's contraction
table. Predictions and references go through the same function, so the choice
only matters when comparing scores with the official script.

Two per-question scores are averaged over questions:

* **Exact match**: 1 if the prediction equals the most common reference
  answer (the majority answer), else 0. Ties for most common are all accepted,
  so the score does not depend on the order of the references. With a single
  reference this is plain string equality.
* **VQA accuracy** (Antol et al., 2015): `min(#references equal to the
  prediction / 3, 1)`: an answer given by at least three annotators earns full
  credit. The threshold assumes the ten annotator answers of VQA v2; with
  fewer references it is `min(3, number of references)`, so that with a
  single reference VQA accuracy equals exact match (with the literal `/ 3`
  a right answer would score 1/3). Pass `min_matches=3, adapt_to_references=False`
  for the literal formula. The official script also averages the score over
  the ten leave-one-out subsets of nine references; `leave_one_out=True`
  does that (an answer matching exactly three of ten references then scores
  0.9, not 1).
"""

import re
from collections import Counter

import numpy as np

_NUMBER_WORDS = {
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = frozenset(["a", "an", "the"])
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3})")
_APOSTROPHE = re.compile(r"['\u2019]")
# Any punctuation (or underscore), except a decimal point between two digits.
_PUNCTUATION = re.compile(r"(?!(?<=\d)\.(?=\d))[^\w\s]|_")


def normalize_answer(text):
    """VQA-style normalisation of one answer string.

    Lower-cases, drops apostrophes, replaces other punctuation by spaces
    (keeping a decimal point between digits, dropping a thousands comma),
    removes the articles "a", "an" and "the", writes "zero".."ten" as digits
    and collapses whitespace.

    Args:
        text: str or bytes (UTF-8).

    Returns:
        str.

    Example:

    >>> normalize_answer("The  Two red Cubes!")
    '2 red cubes'
    >>> normalize_answer(b"It's 2.5 meters, or 1,000 mm.")
    'its 2.5 meters or 1000 mm'
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise TypeError(
            f"An answer must be a str or bytes. Received: {text!r} of type {type(text).__name__}"
        )
    text = text.lower()
    text = _THOUSANDS_COMMA.sub("", text)
    text = _APOSTROPHE.sub("", text)
    text = _PUNCTUATION.sub(" ", text)
    words = [_NUMBER_WORDS.get(w, w) for w in text.split() if w not in _ARTICLES]
    return " ".join(words)


def _as_answer_list(values, name):
    """A 1-D sequence of answers (list, tuple, NumPy or tf string array)."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"`{name}` must be a sequence of answers, not one string. Received: {values!r}")
    if not isinstance(values, (list, tuple)):
        values = np.asarray(values, dtype=object)
        if values.ndim != 1:
            raise ValueError(f"`{name}` must be 1-D. Received: shape {values.shape}")
        values = values.tolist()
    return list(values)


def _prepare(predictions, references):
    """Normalised predictions and, per question, a Counter of reference answers."""
    predictions = _as_answer_list(predictions, "predictions")
    if isinstance(references, (list, tuple)):
        references = list(references)
    elif isinstance(references, (str, bytes)):
        raise ValueError(f"`references` must be a sequence, not one string. Received: {references!r}")
    else:
        array = np.asarray(references, dtype=object)
        if array.ndim not in (1, 2):
            raise ValueError(f"`references` must be 1-D or 2-D. Received: shape {array.shape}")
        references = list(array)
    if len(predictions) != len(references):
        raise ValueError(
            "`predictions` and `references` must have the same length. Received: "
            f"{len(predictions)} predictions and {len(references)} references"
        )
    if not predictions:
        raise ValueError("Nothing to evaluate. Received: 0 predictions and 0 references")
    counts = []
    for i, refs in enumerate(references):
        if isinstance(refs, (str, bytes)):
            refs = [refs]
        refs = _as_answer_list(refs, f"references[{i}]")
        if not refs:
            raise ValueError(
                "Every question needs at least one reference answer. Received: an empty "
                f"list at references[{i}]"
            )
        counts.append(Counter(normalize_answer(r) for r in refs))
    return [normalize_answer(p) for p in predictions], counts


def _exact_match_scores(predictions, counts):
    scores = []
    for prediction, ref_counts in zip(predictions, counts):
        top = max(ref_counts.values())
        scores.append(1.0 if ref_counts.get(prediction, 0) == top else 0.0)
    return np.asarray(scores)


def _vqa_scores(predictions, counts, min_matches, adapt_to_references, leave_one_out):
    def credit(matches, num_references):
        needed = min(min_matches, num_references) if adapt_to_references else min_matches
        return min(matches / needed, 1.0)

    scores = []
    for i, (prediction, ref_counts) in enumerate(zip(predictions, counts)):
        matches = ref_counts.get(prediction, 0)
        total = sum(ref_counts.values())
        if not leave_one_out:
            scores.append(credit(matches, total))
            continue
        if total < 2:
            raise ValueError(
                "`leave_one_out=True` needs at least 2 references per question. "
                f"Received: {total} at references[{i}]"
            )
        # Dropping one of the `matches` equal references leaves matches - 1.
        score = matches * credit(matches - 1, total - 1) + (total - matches) * credit(matches, total - 1)
        scores.append(score / total)
    return np.asarray(scores)


def _check_min_matches(min_matches):
    if isinstance(min_matches, bool) or not isinstance(min_matches, (int, np.integer)) or min_matches < 1:
        raise ValueError(f"`min_matches` must be a positive int. Received: min_matches={min_matches!r}")


def exact_match_accuracy(predictions, references):
    """Fraction of questions whose prediction equals the majority reference.

    Answers are compared after `normalize_answer`. A question's reference is
    its most common reference answer; when several answers tie for most
    common, matching any of them counts, so the order of the references does
    not matter. With one reference per question this is plain accuracy.

    Args:
        predictions: list (or 1-D array) of str or bytes, one per question.
        references: list with, per question, one str or a list of reference
            strs (a 2-D array of strs also works).

    Returns:
        float in [0, 1].

    Example:

    >>> exact_match_accuracy(
    ...     ["two", "red"],
    ...     [["2", "2", "3"], ["blue", "red", "blue"]],
    ... )
    0.5
    """
    predictions, counts = _prepare(predictions, references)
    return float(np.mean(_exact_match_scores(predictions, counts)))


def vqa_accuracy(predictions, references, min_matches=3, adapt_to_references=True, leave_one_out=False):
    """VQA accuracy: mean over questions of `min(#matching references / 3, 1)`.

    Answers are compared after `normalize_answer`. With fewer than
    `min_matches` references the threshold is the number of references
    (`adapt_to_references=True`), so with a single reference this equals
    exact match. The official VQA script also averages the score over the
    leave-one-out subsets of the ten references (`leave_one_out=True`): an
    answer matching 3 of 10 references then scores 0.9.

    Args:
        predictions: list (or 1-D array) of str or bytes, one per question.
        references: list with, per question, one str or a list of reference
            strs.
        min_matches: int. Matching references needed for full credit.
        adapt_to_references: bool. Use `min(min_matches, number of
            references)` as the threshold. False gives the literal formula.
        leave_one_out: bool. Average over the subsets that leave one
            reference out (each question needs at least 2 references).

    Returns:
        float in [0, 1].

    Example:

    >>> vqa_accuracy(
    ...     ["two", "red"],
    ...     [["2", "2", "3", "4"], ["blue", "red", "blue", "blue"]],
    ... )  # (min(2 / 3, 1) + min(1 / 3, 1)) / 2
    0.5
    """
    _check_min_matches(min_matches)
    predictions, counts = _prepare(predictions, references)
    scores = _vqa_scores(predictions, counts, min_matches, adapt_to_references, leave_one_out)
    return float(np.mean(scores))


def vqa_metrics(predictions, references, question_types=None, **vqa_kwargs):
    """Exact match and VQA accuracy, overall and per question type.

    Args:
        predictions: list (or 1-D array) of str or bytes, one per question.
        references: list with, per question, one str or a list of reference
            strs.
        question_types: optional list of question types (str, bytes or any
            hashable; bytes are decoded), one per question.
        **vqa_kwargs: `min_matches`, `adapt_to_references`, `leave_one_out`
            as for `vqa_accuracy`.

    Returns:
        dict `{"exact_match": float, "vqa_accuracy": float, "count": int}`,
        plus `"by_question_type": {type: {"exact_match", "vqa_accuracy",
        "count"}}` (types sorted) when `question_types` is given.

    Example:

    >>> metrics = vqa_metrics(
    ...     ["red", "3", "cube"],
    ...     ["red", "two", "cube"],
    ...     question_types=["color", "count", "shape"],
    ... )
    >>> metrics["exact_match"], metrics["by_question_type"]["count"]["count"]
    (0.666..., 1)
    """
    unknown = set(vqa_kwargs) - {"min_matches", "adapt_to_references", "leave_one_out"}
    if unknown:
        raise TypeError(f"Unknown keyword arguments for vqa_metrics: {sorted(unknown)}")
    min_matches = vqa_kwargs.get("min_matches", 3)
    _check_min_matches(min_matches)
    predictions, counts = _prepare(predictions, references)
    exact = _exact_match_scores(predictions, counts)
    vqa = _vqa_scores(
        predictions,
        counts,
        min_matches,
        vqa_kwargs.get("adapt_to_references", True),
        vqa_kwargs.get("leave_one_out", False),
    )
    metrics = {
        "exact_match": float(exact.mean()),
        "vqa_accuracy": float(vqa.mean()),
        "count": len(predictions),
    }
    if question_types is None:
        return metrics
    question_types = _as_answer_list(question_types, "question_types")
    if len(question_types) != len(predictions):
        raise ValueError(
            "`question_types` must have one entry per question. Received: "
            f"{len(question_types)} question types and {len(predictions)} predictions"
        )
    question_types = [t.decode("utf-8") if isinstance(t, bytes) else t for t in question_types]
    by_type = {}
    for question_type in sorted(set(question_types), key=str):
        mask = np.asarray([t == question_type for t in question_types])
        by_type[question_type] = {
            "exact_match": float(exact[mask].mean()),
            "vqa_accuracy": float(vqa[mask].mean()),
            "count": int(mask.sum()),
        }
    metrics["by_question_type"] = by_type
    return metrics
