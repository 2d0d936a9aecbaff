import keras
import keras_hub

from mmzoo.encoders.common import check_transformer_args
from mmzoo.encoders.common import pool_sequence
from mmzoo.layers.transformer import transformer_block
from mmzoo.layers.validation import check_positive_int


def build_text_encoder(
    vocabulary_size,
    sequence_length,
    num_layers=4,
    num_heads=8,
    hidden_dim=512,
    intermediate_dim=2048,
    dropout_rate=0.0,
    pooling="mean",
    layer_norm_epsilon=1e-6,
    name="text_encoder",
    dtype=None,
):
    """Builds a bidirectional Transformer text tower.

    Token + position embedding (keras-hub `TokenAndPositionEmbedding`) ->
    `num_layers` pre-norm keras-hub `TransformerEncoder` blocks that never attend
    to padding -> final layer norm. The pooled output is the mean over real
    tokens (padding excluded) or learned-query attention pooling.

    Args:
        vocabulary_size: int. Token ids are in `[0, vocabulary_size)`.
        sequence_length: int. Fixed length of `token_ids` (static for XLA).
        num_layers: int.
        num_heads: int. Must divide `hidden_dim`.
        hidden_dim: int.
        intermediate_dim: int.
        dropout_rate: float.
        pooling: `"mean"` or `"attention"`.
        layer_norm_epsilon: float.
        name: str.
        dtype: dtype or policy name; None for the global policy.

    Returns:
        A functional `keras.Model` with inputs
        `{"token_ids": (batch_size, sequence_length) int32,
        "padding_mask": (batch_size, sequence_length) bool}` and outputs
        `{"sequence_output": (batch_size, sequence_length, hidden_dim),
        "pooled_output": (batch_size, hidden_dim)}`.

    Example:

    ```python
    encoder = mmzoo.encoders.build_text_encoder(
        vocabulary_size=1000, sequence_length=16, num_layers=2, num_heads=2,
        hidden_dim=32, intermediate_dim=64)
    outputs = encoder({"token_ids": np.ones((4, 16), "int32"),
                       "padding_mask": np.ones((4, 16), bool)})
    ```
    """
    vocabulary_size = check_positive_int("vocabulary_size", vocabulary_size)
    sequence_length = check_positive_int("sequence_length", sequence_length)
    check_transformer_args(num_layers, num_heads, hidden_dim, intermediate_dim, dropout_rate)

    # === Functional Model ===
    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    padding_mask = keras.Input(shape=(sequence_length,), dtype="bool", name="padding_mask")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size=vocabulary_size,
        sequence_length=sequence_length,
        embedding_dim=hidden_dim,
        dtype=dtype,
        name="token_and_position_embedding",
    )(token_ids)
    x = keras.layers.Dropout(dropout_rate, dtype=dtype, name="embedding_dropout")(x)
    for i in range(num_layers):
        x = transformer_block(i, num_heads, intermediate_dim, dropout_rate, layer_norm_epsilon, dtype)(
            x, padding_mask=padding_mask
        )
    sequence = keras.layers.LayerNormalization(
        epsilon=layer_norm_epsilon, dtype=dtype, name="final_norm"
    )(x)
    pooled = pool_sequence(sequence, padding_mask, pooling, num_heads, dtype)
    return keras.Model(
        {"token_ids": token_ids, "padding_mask": padding_mask},
        {"sequence_output": sequence, "pooled_output": pooled},
        name=name,
    )
