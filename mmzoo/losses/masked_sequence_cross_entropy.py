import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmzoo")
class MaskedSequenceCrossEntropy(keras.losses.Loss):
    """Token cross-entropy averaged over the real (non-padding) tokens of each sequence.

    Each sequence's loss is the mean over its tokens whose target is not
    `pad_token_id`; the batch loss is the mean over sequences. Because every
    sequence contributes one value, the loss splits across replicas like any
    per-example loss (a global-batch average of per-replica sums), which a
    token-count average pooled over the whole batch would not.

    Args:
        pad_token_id: int. Targets equal to it are ignored.
        from_logits: bool. Whether `y_pred` are logits.
        label_smoothing: float in [0, 1).
        reduction, name, dtype: as for `keras.losses.Loss`.

    Call arguments:
        y_true: int `(batch, sequence_length)` target ids.
        y_pred: `(batch, sequence_length, vocabulary_size)`.

    Example:

    >>> loss = mmzoo.losses.MaskedSequenceCrossEntropy(pad_token_id=0)
    >>> loss(np.array([[5, 2, 0]]), np.zeros((1, 3, 8)))  # log(8) over 2 tokens
    2.0794415
    """

    def __init__(
        self,
        pad_token_id=0,
        from_logits=True,
        label_smoothing=0.0,
        reduction="sum_over_batch_size",
        name="masked_sequence_cross_entropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f"`label_smoothing` must be in [0, 1). Received: label_smoothing={label_smoothing!r}"
            )
        self.pad_token_id = pad_token_id
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        y_pred = ops.cast(y_pred, "float32")
        vocabulary_size = ops.shape(y_pred)[-1]
        if self.label_smoothing:
            targets = ops.one_hot(y_true, vocabulary_size, dtype="float32")
            targets = targets * (1.0 - self.label_smoothing) + self.label_smoothing / ops.cast(
                vocabulary_size, "float32"
            )
            token_loss = keras.losses.categorical_crossentropy(
                targets, y_pred, from_logits=self.from_logits
            )
        else:
            token_loss = keras.losses.sparse_categorical_crossentropy(
                y_true, y_pred, from_logits=self.from_logits
            )
        mask = ops.cast(ops.not_equal(y_true, self.pad_token_id), "float32")
        count = ops.maximum(ops.sum(mask, axis=-1), 1.0)
        return ops.sum(token_loss * mask, axis=-1) / count

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pad_token_id": self.pad_token_id,
                "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing,
            }
        )
        return config
