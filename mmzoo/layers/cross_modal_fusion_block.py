import keras
import keras_hub

from mmzoo.layers.validation import check_divisible
from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.validation import check_rank
from mmzoo.layers.validation import check_rate


@keras.saving.register_keras_serializable(package="mmzoo")
class CrossModalFusionBlock(keras.layers.Layer):
    """Self-attention over one modality, then cross-attention to another.

    One pre-norm block: `x += SelfAttention(LN(x))`, `x += CrossAttention(LN(x),
    context)`, `x += MLP(LN(x))`, with no causal mask, so every token sees every
    other real token. Padded tokens of either modality are never attended to.
    This is keras-hub's `TransformerDecoder` (with `normalize_first=True`)
    called without its causal mask, behind argument names that say what the two
    sequences are; stack blocks, or use two of them crosswise, for co-attention.

    Args:
        num_heads: int. Attention heads; must divide the feature size of
            `inputs`.
        intermediate_dim: int. Hidden size of the MLP.
        dropout_rate: float. Dropout in attention and MLP.
        activation: str. MLP activation.
        layer_norm_epsilon: float.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(batch_size, sequence_length, hidden_dim)`, the modality that
            is updated (e.g. question tokens).
        context: `(batch_size, context_length, context_dim)`, the modality
            attended to (e.g. video tokens).
        padding_mask: optional bool `(batch_size, sequence_length)`.
        context_padding_mask: optional bool `(batch_size, context_length)`.

    Returns:
        `(batch_size, sequence_length, hidden_dim)`.

    Example:

    >>> block = mmzoo.layers.CrossModalFusionBlock(num_heads=2, intermediate_dim=32)
    >>> block(np.zeros((2, 5, 16)), np.zeros((2, 7, 16))).shape
    (2, 5, 16)
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout_rate=0.0,
        activation="gelu",
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        num_heads = check_positive_int("num_heads", num_heads)
        intermediate_dim = check_positive_int("intermediate_dim", intermediate_dim)
        dropout_rate = check_rate("dropout_rate", dropout_rate)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout_rate = dropout_rate
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.transformer = keras_hub.layers.TransformerDecoder(
            intermediate_dim=intermediate_dim,
            num_heads=num_heads,
            dropout=dropout_rate,
            activation=activation,
            layer_norm_epsilon=layer_norm_epsilon,
            normalize_first=True,
            dtype=self.dtype_policy,
            name="transformer",
        )

    def build(
        self,
        inputs_shape,
        context_shape,
        padding_mask_shape=None,
        context_padding_mask_shape=None,
    ):
        check_rank("inputs", inputs_shape, 3, "(batch_size, sequence_length, hidden_dim)")
        check_rank("context", context_shape, 3, "(batch_size, context_length, context_dim)")
        check_divisible("hidden_dim", inputs_shape[-1], "num_heads", self.num_heads)
        self.transformer.build(inputs_shape, context_shape)

    def call(
        self,
        inputs,
        context,
        padding_mask=None,
        context_padding_mask=None,
        training=None,
    ):
        return self.transformer(
            inputs,
            context,
            decoder_padding_mask=padding_mask,
            encoder_padding_mask=context_padding_mask,
            use_causal_mask=False,
            training=training,
        )

    def compute_output_shape(
        self,
        inputs_shape,
        context_shape=None,
        padding_mask_shape=None,
        context_padding_mask_shape=None,
    ):
        return tuple(inputs_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout_rate": self.dropout_rate,
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
