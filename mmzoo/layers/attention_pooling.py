import keras
from keras import ops

from mmzoo.layers.validation import check_divisible
from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.validation import check_rank
from mmzoo.layers.validation import check_rate


@keras.saving.register_keras_serializable(package="mmzoo")
class AttentionPooling(keras.layers.Layer):
    """Pools a token sequence with learned queries (multi-head attention pooling).

    `num_queries` learned vectors attend over the (layer-normalised) sequence;
    padded positions are never attended to. This is the "MAP" head of
    big_vision's ViT and the attentional pooler of CoCa.

    Args:
        num_heads: int. Attention heads; must divide the sequence feature size.
        num_queries: int. Number of learned queries. With 1 the output drops the
            query axis.
        dropout_rate: float. Dropout on the attention weights.
        layer_norm_epsilon: float.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(batch_size, sequence_length, hidden_dim)`.
        padding_mask: optional bool `(batch_size, sequence_length)`, True for
            real tokens.

    Returns:
        `(batch_size, hidden_dim)` when `num_queries == 1`, else
        `(batch_size, num_queries, hidden_dim)`.

    Example:

    >>> pool = mmzoo.layers.AttentionPooling(num_heads=2)
    >>> pool(np.zeros((2, 5, 8)), padding_mask=np.ones((2, 5), bool)).shape
    (2, 8)
    """

    def __init__(
        self,
        num_heads,
        num_queries=1,
        dropout_rate=0.0,
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        num_heads = check_positive_int("num_heads", num_heads)
        num_queries = check_positive_int("num_queries", num_queries)
        dropout_rate = check_rate("dropout_rate", dropout_rate)
        self.num_heads = num_heads
        self.num_queries = num_queries
        self.dropout_rate = dropout_rate
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, inputs_shape, padding_mask_shape=None):
        check_rank("inputs", inputs_shape, 3, "(batch_size, sequence_length, hidden_dim)")
        hidden_dim = inputs_shape[-1]
        check_divisible("hidden_dim", hidden_dim, "num_heads", self.num_heads)
        self.query = self.add_weight(
            shape=(self.num_queries, hidden_dim),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="query",
        )
        self.norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="norm"
        )
        self.norm.build(inputs_shape)
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=hidden_dim // self.num_heads,
            dropout=self.dropout_rate,
            dtype=self.dtype_policy,
            name="attention",
        )
        self.attention.build(
            query_shape=(inputs_shape[0], self.num_queries, hidden_dim),
            value_shape=inputs_shape,
        )

    def call(self, inputs, padding_mask=None, training=None):
        batch_size = ops.shape(inputs)[0]
        query = ops.broadcast_to(
            ops.cast(self.query, inputs.dtype)[None],
            (batch_size, self.num_queries, ops.shape(inputs)[-1]),
        )
        attention_mask = None
        if padding_mask is not None:
            attention_mask = ops.repeat(
                ops.cast(padding_mask, "bool")[:, None, :], self.num_queries, axis=1
            )
        x = self.norm(inputs)
        outputs = self.attention(
            query, x, attention_mask=attention_mask, training=training
        )
        if self.num_queries == 1:
            outputs = ops.squeeze(outputs, axis=1)
        return outputs

    def compute_output_shape(self, inputs_shape, padding_mask_shape=None):
        if self.num_queries == 1:
            return (inputs_shape[0], inputs_shape[-1])
        return (inputs_shape[0], self.num_queries, inputs_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "num_queries": self.num_queries,
                "dropout_rate": self.dropout_rate,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
