"""Small layers of the video QA family."""

import keras
from keras import ops

from mmzoo.layers.validation import check_rank


@keras.saving.register_keras_serializable(package="mmzoo")
class ModalityConcat(keras.layers.Layer):
    """Early fusion: video tokens then question tokens, each with a type embedding.

    Adds a learned "video" vector to every video token and a learned
    "question" vector to every question token (BERT's segment embedding), so
    the joint Transformer can tell the two modalities apart, then concatenates
    them along the sequence axis. Video tokens are never padding.

    Args:
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        video_tokens: `(batch_size, num_video_tokens, hidden_dim)`.
        question_tokens: `(batch_size, question_length, hidden_dim)`.
        question_padding_mask: bool `(batch_size, question_length)`.

    Returns:
        `(tokens (batch_size, num_video_tokens + question_length, hidden_dim),
        padding_mask bool (batch_size, num_video_tokens + question_length))`.

    Example:

    >>> layer = ModalityConcat()
    >>> tokens, mask = layer(np.zeros((2, 6, 8)), np.zeros((2, 4, 8)), np.ones((2, 4), bool))
    >>> tokens.shape, mask.shape
    ((2, 10, 8), (2, 10))
    """

    def build(self, video_tokens_shape, question_tokens_shape, question_padding_mask_shape=None):
        check_rank(
            "video_tokens", video_tokens_shape, 3, "(batch_size, num_video_tokens, hidden_dim)"
        )
        check_rank(
            "question_tokens", question_tokens_shape, 3, "(batch_size, question_length, hidden_dim)"
        )
        if video_tokens_shape[-1] != question_tokens_shape[-1]:
            raise ValueError(
                "`video_tokens` and `question_tokens` must have the same feature size. "
                f"Received: video_tokens shape {video_tokens_shape}, "
                f"question_tokens shape {question_tokens_shape}"
            )
        dim = video_tokens_shape[-1]
        initializer = keras.initializers.TruncatedNormal(stddev=0.02)
        self.video_type_embedding = self.add_weight(
            shape=(dim,), initializer=initializer, name="video_type_embedding"
        )
        self.question_type_embedding = self.add_weight(
            shape=(dim,), initializer=initializer, name="question_type_embedding"
        )

    def call(self, video_tokens, question_tokens, question_padding_mask):
        video = video_tokens + ops.cast(self.video_type_embedding, video_tokens.dtype)
        question = question_tokens + ops.cast(self.question_type_embedding, question_tokens.dtype)
        tokens = ops.concatenate([video, question], axis=1)
        video_mask = ops.ones(ops.shape(video_tokens)[:2], dtype="bool")
        mask = ops.concatenate([video_mask, ops.cast(question_padding_mask, "bool")], axis=1)
        return tokens, mask

    def compute_output_shape(
        self, video_tokens_shape, question_tokens_shape, question_padding_mask_shape=None
    ):
        batch, length = video_tokens_shape[0], None
        if video_tokens_shape[1] is not None and question_tokens_shape[1] is not None:
            length = video_tokens_shape[1] + question_tokens_shape[1]
        return (batch, length, video_tokens_shape[-1]), (batch, length)

    def compute_output_spec(self, video_tokens, question_tokens, question_padding_mask):
        tokens_shape, mask_shape = self.compute_output_shape(
            video_tokens.shape, question_tokens.shape
        )
        return (
            keras.KerasTensor(tokens_shape, dtype=self.compute_dtype),
            keras.KerasTensor(mask_shape, dtype="bool"),
        )
