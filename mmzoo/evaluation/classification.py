"""Per-class precision, recall and F1 in scikit-learn's report layout.

`classification_report` returns the dict that
`sklearn.metrics.classification_report(..., output_dict=True)` returns, for
binary and multi-class targets, computed with NumPy alone (the tests check
equality with scikit-learn to 1e-12). Differences, all on inputs where
scikit-learn warns or silently truncates: a `target_names` list of the wrong
length and duplicate `labels` raise `ValueError`; multi-label indicator
matrices are not supported; `zero_division` defaults to 0.0 without a
warning.
"""

import math
import warnings

import numpy as np

_AVERAGE_KEYS = ("accuracy", "micro avg", "macro avg", "weighted avg", "samples avg")
_HEADERS = ("precision", "recall", "f1-score", "support")


def _as_label_array(values, name):
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be a 1-D array of class labels (multi-label indicator "
            f"matrices are not supported). Received: shape {array.shape}"
        )
    return array


def _zero_division_value(zero_division):
    if isinstance(zero_division, str) and zero_division == "warn":
        return 0.0, True
    if (
        not isinstance(zero_division, bool)
        and isinstance(zero_division, (int, float, np.integer, np.floating))
        and (zero_division in (0, 1) or math.isnan(zero_division))
    ):
        return float(zero_division), False
    raise ValueError(
        f'`zero_division` must be 0, 1, nan or "warn". Received: zero_division={zero_division!r}'
    )


def _divide(numerator, denominator, zero_division, warn, what):
    """`numerator / denominator`, with `zero_division` where the denominator is 0."""
    mask = denominator == 0
    denominator = np.asarray(denominator, dtype=np.float64).copy()
    denominator[mask] = 1.0
    result = np.asarray(numerator, dtype=np.float64) / denominator
    if mask.any():
        result[mask] = zero_division
        if warn:
            warnings.warn(
                f"{what} is ill-defined for {int(mask.sum())} class(es) with no "
                "samples and is set to 0.0. Pass `zero_division` to choose the value.",
                RuntimeWarning,
                stacklevel=3,
            )
    return result


def _nan_average(values, weights=None):
    """Weighted mean ignoring NaNs; all-zero weights fall back to the plain mean."""
    keep = ~np.isnan(values)
    if not keep.any():
        return float("nan")
    values = values[keep]
    if weights is None:
        return float(np.mean(values))
    weights = np.asarray(weights)[keep]
    if weights.sum() == 0:
        return float(np.mean(values))
    return float(np.average(values, weights=weights))


def classification_report(
    y_true,
    y_pred,
    labels=None,
    target_names=None,
    sample_weight=None,
    zero_division=0.0,
):
    """Precision, recall, F1 and support per class, plus their averages.

    The dict has scikit-learn's `classification_report(output_dict=True)`
    layout: one entry per class, keyed by its target name (default
    `str(label)`), with `"precision"`, `"recall"`, `"f1-score"` and
    `"support"` (the number, or the summed sample weight, of true examples of
    the class), then `"accuracy"` (a float), `"macro avg"` (unweighted mean
    over classes) and `"weighted avg"` (weighted by support), each with the
    same four keys and the total support. As in scikit-learn, when `labels` is
    given and does not include every label present in `y_true` or `y_pred`,
    `"accuracy"` is replaced by `"micro avg"` (precision, recall and F1 of the
    pooled counts over `labels`), since it is then no longer the accuracy.

    Args:
        y_true: 1-D array-like of true labels (ints, strs...).
        y_pred: 1-D array-like of predicted labels, same length.
        labels: optional list of labels to report, in order. Default: the
            sorted union of the labels in `y_true` and `y_pred`. Labels absent
            from the data get zero counts.
        target_names: optional list of display names, one per label.
        sample_weight: optional 1-D array-like of per-example weights.
        zero_division: 0, 1, nan or "warn". The value of a precision, recall
            or F1 whose denominator is zero ("warn": 0 with a warning). NaN
            values are left out of the averages.

    Returns:
        dict as described above; all numbers are Python floats.

    Example:

    >>> report = classification_report([0, 1, 2, 2], [0, 2, 2, 2])
    >>> report["2"]
    {'precision': 0.666..., 'recall': 1.0, 'f1-score': 0.8, 'support': 2.0}
    >>> report["accuracy"], report["macro avg"]["recall"]
    (0.75, 0.666...)
    """
    y_true = _as_label_array(y_true, "y_true")
    y_pred = _as_label_array(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(
            "`y_true` and `y_pred` must have the same length. Received: "
            f"{len(y_true)} true labels and {len(y_pred)} predicted labels"
        )
    if len(y_true) == 0:
        raise ValueError("Nothing to evaluate. Received: 0 labels")
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        if sample_weight.shape != y_true.shape:
            raise ValueError(
                "`sample_weight` must have one weight per example. Received: "
                f"shape {sample_weight.shape} for {len(y_true)} examples"
            )
    zero_value, warn = _zero_division_value(zero_division)

    present = np.unique(np.concatenate([y_true, y_pred]))
    if labels is None:
        labels = present
        micro_is_accuracy = True
    else:
        labels = _as_label_array(labels, "labels")
        if len(labels) == 0:
            raise ValueError("`labels` must not be empty. Received: labels=[]")
        if len(np.unique(labels)) != len(labels):
            raise ValueError(f"`labels` must not repeat a label. Received: labels={labels.tolist()}")
        micro_is_accuracy = set(labels.tolist()) >= set(present.tolist())
    if target_names is None:
        target_names = [str(label) for label in labels]
    elif len(target_names) != len(labels):
        raise ValueError(
            "`target_names` must have one name per label. Received: "
            f"{len(target_names)} names for {len(labels)} labels"
        )

    # Per-label counts: true positives, predictions and true examples.
    # `classes` holds every label (requested or present), sorted, so that
    # searchsorted maps each example to a bin.
    classes = np.unique(np.concatenate([labels, present]))
    true_index = np.searchsorted(classes, y_true)
    pred_index = np.searchsorted(classes, y_pred)
    correct = true_index == pred_index
    tp_weight = None if sample_weight is None else sample_weight[correct]
    tp_sum = np.bincount(true_index[correct], weights=tp_weight, minlength=len(classes))
    pred_sum = np.bincount(pred_index, weights=sample_weight, minlength=len(classes))
    true_sum = np.bincount(true_index, weights=sample_weight, minlength=len(classes))
    selected = np.searchsorted(classes, labels)
    tp_sum, pred_sum, true_sum = tp_sum[selected], pred_sum[selected], true_sum[selected]

    def scores(tp, predicted, true):
        precision = _divide(tp, predicted, zero_value, warn, "Precision")
        recall = _divide(tp, true, zero_value, warn, "Recall")
        # F1 from the counts, 2 tp / (2 tp + fp + fn), as scikit-learn does:
        # it is 0 (not undefined) when precision and recall are both 0.
        f1 = _divide(2.0 * np.asarray(tp, np.float64), true + predicted, zero_value, warn, "F-score")
        return precision, recall, f1

    precision, recall, f1 = scores(tp_sum, pred_sum, true_sum)
    report = {}
    for name, p, r, f, s in zip(target_names, precision, recall, f1, true_sum):
        report[name] = {"precision": float(p), "recall": float(r), "f1-score": float(f), "support": float(s)}

    total_support = float(np.sum(true_sum))
    micro = scores(tp_sum.sum(keepdims=True), pred_sum.sum(keepdims=True), true_sum.sum(keepdims=True))
    if micro_is_accuracy:
        report["accuracy"] = float(micro[0][0])
    else:
        report["micro avg"] = dict(zip(_HEADERS, [float(m[0]) for m in micro] + [total_support]))
    for key, weights in (("macro avg", None), ("weighted avg", true_sum)):
        averages = [_nan_average(values, weights) for values in (precision, recall, f1)]
        report[key] = dict(zip(_HEADERS, averages + [total_support]))
    return report


def _format_support(value):
    value = float(value)
    return str(int(value)) if value.is_integer() else str(value)


def format_classification_report(report, digits=2):
    """The text table of a `classification_report` dict.

    The layout is that of scikit-learn's text report (for unweighted data
    the text is identical). Supports that are whole numbers are written as
    integers.

    Args:
        report: dict returned by `classification_report`.
        digits: int. Digits after the decimal point.

    Returns:
        str, one line per class and per average.

    Example:

    >>> print(format_classification_report(
    ...     classification_report(["cat", "dog", "dog"], ["cat", "cat", "dog"])))
                  precision    recall  f1-score   support
    <BLANKLINE>
             cat       0.50      1.00      0.67         1
             dog       1.00      0.50      0.67         2
    <BLANKLINE>
        accuracy                           0.67         3
       macro avg       0.75      0.75      0.67         3
    weighted avg       0.83      0.67      0.67         3
    <BLANKLINE>
    """
    if not isinstance(report, dict) or "macro avg" not in report:
        raise ValueError(
            "`report` must be a dict returned by `classification_report`. "
            f"Received: {type(report).__name__} with keys "
            f"{sorted(report) if isinstance(report, dict) else None}"
        )
    classes = [key for key in report if key not in _AVERAGE_KEYS]
    averages = [key for key in report if key in _AVERAGE_KEYS]
    width = max([len(str(name)) for name in classes] + [len("weighted avg"), digits])
    text = f"{'':>{width}s} " + "".join(f" {header:>9}" for header in _HEADERS) + "\n\n"

    def row(name, values):
        numbers = "".join(f" {values[key]:>9.{digits}f}" for key in _HEADERS[:3])
        return f"{str(name):>{width}s} {numbers} {_format_support(values['support']):>9}\n"

    for name in classes:
        text += row(name, report[name])
    text += "\n"
    for name in averages:
        if name == "accuracy":
            support = _format_support(report["macro avg"]["support"])
            text += f"{name:>{width}s}  {'':>9} {'':>9} {report[name]:>9.{digits}f} {support:>9}\n"
        else:
            text += row(name, report[name])
    return text
