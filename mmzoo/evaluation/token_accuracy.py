import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmzoo")
class MaskedTokenAccuracy(keras.metrics.Mean):
    """Fraction of non-padding target tokens whose arg-max prediction is right.

    Args:
        pad_token_id: int. Targets equal to it are not counted.
        name, dtype: as for `keras.metrics.Metric`.

    Example:

    ```python
    model.compile(..., metrics=[mmzoo.evaluation.MaskedTokenAccuracy()])
    ```
    """

    def __init__(self, pad_token_id=0, name="token_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.pad_token_id = pad_token_id

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        correct = ops.cast(ops.equal(ops.argmax(y_pred, axis=-1), y_true), "float32")
        mask = ops.cast(ops.not_equal(y_true, self.pad_token_id), "float32")
        if sample_weight is not None:
            mask = mask * ops.cast(sample_weight, "float32")
        return super().update_state(correct, sample_weight=mask)

    def get_config(self):
        return {**super().get_config(), "pad_token_id": self.pad_token_id}
