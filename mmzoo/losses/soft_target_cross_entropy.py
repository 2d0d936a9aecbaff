import keras
from keras import ops

TARGET_FORMATS = ("ids", "scores")


def vqa_target_scores(reference_ids, num_answers):
    """VQA soft scores: `min(#references giving the answer / 3, 1)` per answer.

    The score of the VQA benchmark (Antol et al., 2015): an answer given by
    three or more of the (usually ten) annotators is fully right, one given by
    one annotator a third right.

    Args:
        reference_ids: int `(batch, num_references)` answer ids; negative ids
            (padding, or answers outside the vocabulary) count for nothing.
        num_answers: int. Size of the answer vocabulary.

    Returns:
        float32 `(batch, num_answers)`.

    Example:

    >>> vqa_target_scores(np.array([[1, 1, 2, -1]]), 4)
    array([[0.        , 0.6666667 , 0.33333334, 0.        ]], dtype=float32)
    """
    ids = ops.cast(reference_ids, "int32")
    # one_hot of a negative id is all zeros, so padding drops out.
    counts = ops.sum(ops.one_hot(ids, num_answers, dtype="float32"), axis=-2)
    return ops.minimum(counts / 3.0, 1.0)


@keras.saving.register_keras_serializable(package="mmzoo")
class SoftTargetCrossEntropy(keras.losses.Loss):
    """Softmax cross-entropy against a target distribution over answers.

    The targets of each example are turned into a distribution over the
    answer vocabulary and the loss is `-sum(target * log_softmax(logits))`:

    - `target_format="ids"`: `y_true` is one answer id per example
      `(batch,)` (plain cross-entropy), or several reference answer ids
      `(batch, num_references)` padded with -1, scored as in the VQA
      benchmark (`vqa_target_scores`, `min(count / 3, 1)`) and normalised to
      sum to 1.
    - `target_format="scores"`: `y_true` is `(batch, num_answers)`
      non-negative scores (e.g. precomputed VQA scores), normalised to sum 1.

    An example with no valid target (all ids -1, or all scores 0) contributes
    a loss of 0. Softmax over normalised VQA scores, rather than a per-answer
    sigmoid, keeps the classifier a single distribution, so `argmax` is the
    answer and exact-match accuracy can be read off directly.

    Args:
        target_format: `"ids"` or `"scores"`.
        label_smoothing: float in [0, 1). Mixes the targets with the uniform
            distribution.
        reduction, name, dtype: as for `keras.losses.Loss`.

    Call arguments:
        y_true: see `target_format`.
        y_pred: logits `(batch, num_answers)`.

    Example:

    >>> loss = mmzoo.losses.SoftTargetCrossEntropy()
    >>> loss(np.array([2, 0]), np.zeros((2, 4)))  # log(4)
    1.3862944
    >>> loss(np.array([[2, 2, 2, 1]]), np.zeros((1, 4)))  # targets 0.5 / 0.5
    1.3862944
    """

    def __init__(
        self,
        target_format="ids",
        label_smoothing=0.0,
        reduction="sum_over_batch_size",
        name="soft_target_cross_entropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if target_format not in TARGET_FORMATS:
            raise ValueError(
                f"`target_format` must be one of {list(TARGET_FORMATS)}. "
                f"Received: target_format={target_format!r}"
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                "`label_smoothing` must be in [0, 1). "
                f"Received: label_smoothing={label_smoothing!r}"
            )
        self.target_format = target_format
        self.label_smoothing = label_smoothing

    def targets(self, y_true, num_answers):
        """The target distribution `(batch, num_answers)` (rows sum to 1 or 0)."""
        if self.target_format == "scores":
            scores = ops.maximum(ops.cast(y_true, "float32"), 0.0)
        elif len(y_true.shape) == 1:
            scores = ops.one_hot(ops.cast(y_true, "int32"), num_answers, dtype="float32")
        elif len(y_true.shape) == 2:
            scores = vqa_target_scores(y_true, num_answers)
        else:
            raise ValueError(
                "With target_format='ids', `y_true` must be (batch,) answer ids or "
                f"(batch, num_references) reference ids. Received: y_true shape {y_true.shape}"
            )
        total = ops.sum(scores, axis=-1, keepdims=True)
        targets = ops.divide_no_nan(scores, total)
        if self.label_smoothing:
            has_target = ops.cast(total > 0, "float32")
            uniform = has_target / float(num_answers)
            targets = targets * (1.0 - self.label_smoothing) + self.label_smoothing * uniform
        return targets

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        num_answers = y_pred.shape[-1]
        targets = self.targets(y_true, num_answers)
        return -ops.sum(targets * ops.log_softmax(y_pred, axis=-1), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"target_format": self.target_format, "label_smoothing": self.label_smoothing}
        )
        return config
