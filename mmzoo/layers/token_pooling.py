import keras
from keras import ops

from mmzoo.layers.validation import check_choice


@keras.saving.register_keras_serializable(package="mmzoo")
class TokenPooling(keras.layers.Layer):
    """Picks one position of a sequence as its pooled output.

    The pooling of pretrained Transformer towers: the class token of a ViT
    (`"first"`), the last position of a fixed-length text (`"last"`,
    SigLIP), or the end token of a text, found as the position of the
    largest token id (`"max_token_id"`, CLIP, whose end token has the
    largest id of its vocabulary; the first such position when padding
    repeats it).

    Args:
        mode: `"first"`, `"last"` or `"max_token_id"`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        sequence: `(batch_size, length, dim)`.
        token_ids: int `(batch_size, length)`; only for `"max_token_id"`.

    Returns:
        `(batch_size, dim)`.

    Example:

    >>> pooling = mmzoo.layers.TokenPooling("max_token_id")
    >>> sequence = np.arange(6, dtype="float32").reshape((1, 3, 2))
    >>> pooling(sequence, np.array([[5, 9, 0]])).numpy().tolist()
    [[2.0, 3.0]]
    """

    MODES = ("first", "last", "max_token_id")

    def __init__(self, mode, **kwargs):
        super().__init__(**kwargs)
        check_choice("mode", mode, self.MODES)
        self.mode = mode

    def call(self, sequence, token_ids=None):
        if self.mode == "first":
            return sequence[:, 0, :]
        if self.mode == "last":
            return sequence[:, -1, :]
        if token_ids is None:
            raise ValueError(
                "`TokenPooling(mode='max_token_id')` needs `token_ids`. Received: "
                "token_ids=None"
            )
        position = ops.argmax(token_ids, axis=-1)[:, None, None]
        return ops.squeeze(ops.take_along_axis(sequence, position, axis=1), axis=1)

    def compute_output_shape(self, sequence_shape, token_ids_shape=None):
        return (sequence_shape[0], sequence_shape[-1])

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config
