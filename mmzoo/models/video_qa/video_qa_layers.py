"""Small layers of the video QA family."""

import keras
from keras import ops

from mmzoo.layers import CrossModalFusionBlock
from mmzoo.layers.transformer import transformer_block
from mmzoo.layers.validation import check_choice
from mmzoo.layers.validation import check_divisible
from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.validation import check_rank
from mmzoo.layers.validation import check_rate

FUSIONS = ("cross_attention", "concat")


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


@keras.saving.register_keras_serializable(package="mmzoo")
class VideoQuestionFusion(keras.layers.Layer):
    """Fuses video tokens and question tokens into one sequence.

    The trunk both video QA models share (`VideoQAClassifier` and
    `VideoQAGenerator`): each modality is projected to `hidden_dim`, then
    fused by `num_layers` blocks, then layer-normalized.

    - `fusion="cross_attention"` (default): `mmzoo.layers.CrossModalFusionBlock`s
      in which the question tokens attend to each other and, by cross-modal
      attention, to every video token. The fused sequence is the question
      tokens, with the question's padding mask.
    - `fusion="concat"`: early fusion; video and question tokens, each with a
      learned type embedding (`ModalityConcat`), are concatenated and mixed
      by pre-norm Transformer encoder blocks. The fused sequence is the video
      tokens then the question tokens.

    Args:
        fusion: `"cross_attention"` or `"concat"`.
        num_layers: int. Fusion blocks.
        num_heads: int. Must divide `hidden_dim`.
        hidden_dim: int. Width of the fused tokens.
        intermediate_dim: int. Hidden size of the blocks' MLPs.
        dropout_rate: float.
        layer_norm_epsilon: float.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        video_tokens: `(batch_size, num_video_tokens, video_dim)`, e.g. a video
            encoder's `sequence_output`.
        question_tokens: `(batch_size, question_length, question_dim)`.
        question_padding_mask: bool `(batch_size, question_length)`.

    Returns:
        `(tokens (batch_size, length, hidden_dim), padding_mask bool
        (batch_size, length))`.

    Example:

    >>> fusion = VideoQuestionFusion(num_layers=1, num_heads=2, hidden_dim=8,
    ...                              intermediate_dim=16)
    >>> tokens, mask = fusion(np.zeros((2, 6, 12)), np.zeros((2, 4, 10)),
    ...                       np.ones((2, 4), bool))
    >>> tokens.shape, mask.shape
    ((2, 4, 8), (2, 4))
    """

    def __init__(
        self,
        fusion="cross_attention",
        num_layers=2,
        num_heads=4,
        hidden_dim=256,
        intermediate_dim=1024,
        dropout_rate=0.0,
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_choice("fusion", fusion, FUSIONS)
        self.fusion = fusion
        # Plain Python numbers (NumPy scalars are accepted), for a JSON-clean config.
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        self.intermediate_dim = check_positive_int("intermediate_dim", intermediate_dim)
        check_divisible("hidden_dim", hidden_dim, "num_heads", num_heads)
        self.dropout_rate = check_rate("dropout_rate", dropout_rate)
        self.layer_norm_epsilon = layer_norm_epsilon
        dtype = self.dtype_policy
        self.video_projection = keras.layers.Dense(
            self.hidden_dim, dtype=dtype, name="video_projection"
        )
        self.question_projection = keras.layers.Dense(
            self.hidden_dim, dtype=dtype, name="question_projection"
        )
        if self.fusion == "cross_attention":
            self.modality_concat = None
            self.blocks = [
                CrossModalFusionBlock(
                    num_heads=self.num_heads,
                    intermediate_dim=self.intermediate_dim,
                    dropout_rate=self.dropout_rate,
                    layer_norm_epsilon=layer_norm_epsilon,
                    dtype=dtype,
                    name=f"fusion_block_{i}",
                )
                for i in range(self.num_layers)
            ]
        else:
            self.modality_concat = ModalityConcat(dtype=dtype, name="modality_concat")
            self.blocks = [
                transformer_block(
                    i, self.num_heads, self.intermediate_dim, self.dropout_rate,
                    layer_norm_epsilon, dtype, prefix="fusion",
                )
                for i in range(self.num_layers)
            ]
        self.fusion_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="fusion_norm"
        )

    def build(self, video_tokens_shape, question_tokens_shape, question_padding_mask_shape=None):
        check_rank(
            "video_tokens", video_tokens_shape, 3, "(batch_size, num_video_tokens, video_dim)"
        )
        check_rank(
            "question_tokens", question_tokens_shape, 3,
            "(batch_size, question_length, question_dim)",
        )
        self.video_projection.build(tuple(video_tokens_shape))
        self.question_projection.build(tuple(question_tokens_shape))
        video_shape = tuple(video_tokens_shape[:2]) + (self.hidden_dim,)
        question_shape = tuple(question_tokens_shape[:2]) + (self.hidden_dim,)
        if self.modality_concat is None:
            for block in self.blocks:
                block.build(question_shape, video_shape)
            fused_shape = question_shape
        else:
            self.modality_concat.build(video_shape, question_shape)
            fused_shape, _ = self.modality_concat.compute_output_shape(video_shape, question_shape)
            for block in self.blocks:
                block.build(fused_shape)
        self.fusion_norm.build(fused_shape)

    def call(self, video_tokens, question_tokens, question_padding_mask, training=None):
        video_tokens = self.video_projection(video_tokens)
        question_tokens = self.question_projection(question_tokens)
        question_padding_mask = ops.cast(question_padding_mask, "bool")
        if self.modality_concat is None:
            x, mask = question_tokens, question_padding_mask
            for block in self.blocks:
                x = block(x, video_tokens, padding_mask=mask, training=training)
        else:
            x, mask = self.modality_concat(video_tokens, question_tokens, question_padding_mask)
            for block in self.blocks:
                x = block(x, padding_mask=mask, training=training)
        return self.fusion_norm(x), mask

    def compute_output_shape(
        self, video_tokens_shape, question_tokens_shape, question_padding_mask_shape=None
    ):
        batch = video_tokens_shape[0]
        if self.modality_concat is None:
            length = question_tokens_shape[1]
        elif video_tokens_shape[1] is None or question_tokens_shape[1] is None:
            length = None
        else:
            length = video_tokens_shape[1] + question_tokens_shape[1]
        return (batch, length, self.hidden_dim), (batch, length)

    def compute_output_spec(
        self, video_tokens, question_tokens, question_padding_mask, training=None
    ):
        tokens_shape, mask_shape = self.compute_output_shape(
            video_tokens.shape, question_tokens.shape
        )
        return (
            keras.KerasTensor(tokens_shape, dtype=self.compute_dtype),
            keras.KerasTensor(mask_shape, dtype="bool"),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "fusion": self.fusion,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "hidden_dim": self.hidden_dim,
                "intermediate_dim": self.intermediate_dim,
                "dropout_rate": self.dropout_rate,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
