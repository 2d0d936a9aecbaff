"""The Transformer block every mmzoo stack is made of."""

import keras_hub


def transformer_block(
    index, num_heads, intermediate_dim, dropout_rate, layer_norm_epsilon, dtype,
    prefix="transformer", decoder=False,
):
    """The pre-norm GELU keras-hub Transformer block every mmzoo stack uses.

    A `TransformerEncoder` named `f"{prefix}_block_{index}"`, or with
    `decoder=True` a `TransformerDecoder` (causal self-attention, and
    cross-attention when called with encoder outputs).
    """
    block = keras_hub.layers.TransformerDecoder if decoder else keras_hub.layers.TransformerEncoder
    return block(
        intermediate_dim=intermediate_dim,
        num_heads=num_heads,
        dropout=dropout_rate,
        activation="gelu",
        layer_norm_epsilon=layer_norm_epsilon,
        normalize_first=True,
        dtype=dtype,
        name=f"{prefix}_block_{index}",
    )
