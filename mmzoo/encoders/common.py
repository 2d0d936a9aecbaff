"""Pieces every encoder builder shares: argument checks and the pooling head.

Their Transformer blocks are `mmzoo.layers.transformer.transformer_block`.
"""

import keras

from mmzoo.layers import AttentionPooling
from mmzoo.layers.validation import check_choice
from mmzoo.layers.validation import check_divisible
from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.validation import check_rate

POOLINGS = ("mean", "attention")


def check_transformer_args(num_layers, num_heads, hidden_dim, intermediate_dim, dropout_rate):
    """Validates the arguments every Transformer tower takes."""
    check_positive_int("num_layers", num_layers)
    check_positive_int("num_heads", num_heads)
    check_positive_int("hidden_dim", hidden_dim)
    check_positive_int("intermediate_dim", intermediate_dim)
    check_divisible("hidden_dim", hidden_dim, "num_heads", num_heads)
    check_rate("dropout_rate", dropout_rate)


def check_image_shape(image_shape):
    """`image_shape` must be `(height, width, channels)` of positive ints."""
    if (
        not isinstance(image_shape, (tuple, list))
        or len(image_shape) != 3
        or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in image_shape)
    ):
        raise ValueError(
            "`image_shape` must be a tuple (height, width, channels) of positive ints. "
            f"Received: image_shape={image_shape!r}"
        )
    return tuple(image_shape)


def pool_sequence(sequence, padding_mask, pooling, num_heads, dtype, name="pooling"):
    """Pools `(batch, length, dim)` to `(batch, dim)`, never counting padding."""
    check_choice("pooling", pooling, POOLINGS)
    if pooling == "attention":
        return AttentionPooling(num_heads=num_heads, dtype=dtype, name=name)(
            sequence, padding_mask=padding_mask
        )
    return keras.layers.GlobalAveragePooling1D(dtype=dtype, name=name)(
        sequence, mask=padding_mask
    )
