import keras
from keras import ops

from mmzoo.layers.validation import check_divisible
from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.validation import check_rank
from mmzoo.layers.validation import check_rate


@keras.saving.register_keras_serializable(package="mmzoo")
class FactorisedAttentionBlock(keras.layers.Layer):
    """Space-time Transformer block with factorised self-attention (ViViT model 3).

    Attention over all `num_steps * num_patches` tokens of a video costs
    `O((T N)^2)`; this block attends over space within each time step, then over
    time at each spatial position (`O(T N^2 + N T^2)`), then applies one MLP,
    each sub-layer pre-norm with a residual connection (Arnab et al., 2021).

    Args:
        num_heads: int. Heads of both attentions; must divide `hidden_dim`.
        intermediate_dim: int. Hidden size of the MLP.
        dropout_rate: float.
        activation: str. MLP activation.
        layer_norm_epsilon: float.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(batch_size, num_steps, num_patches, hidden_dim)`, e.g. the
            output of `TubeletEmbedding`.

    Returns:
        `(batch_size, num_steps, num_patches, hidden_dim)`.

    Example:

    >>> block = mmzoo.layers.FactorisedAttentionBlock(num_heads=2, intermediate_dim=32)
    >>> block(np.zeros((2, 4, 16, 16))).shape
    (2, 4, 16, 16)
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
        self.activation = keras.activations.get(activation)
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, inputs_shape):
        check_rank(
            "inputs", inputs_shape, 4, "(batch_size, num_steps, num_patches, hidden_dim)"
        )
        _, steps, patches, hidden_dim = inputs_shape
        check_divisible("hidden_dim", hidden_dim, "num_heads", self.num_heads)

        def norm(name):
            layer = keras.layers.LayerNormalization(
                epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name
            )
            layer.build(inputs_shape)
            return layer

        def attention(name, length):
            layer = keras.layers.MultiHeadAttention(
                num_heads=self.num_heads,
                key_dim=hidden_dim // self.num_heads,
                dropout=self.dropout_rate,
                dtype=self.dtype_policy,
                name=name,
            )
            layer.build((None, length, hidden_dim), (None, length, hidden_dim))
            return layer

        self.spatial_norm = norm("spatial_norm")
        self.spatial_attention = attention("spatial_attention", patches)
        self.temporal_norm = norm("temporal_norm")
        self.temporal_attention = attention("temporal_attention", steps)
        self.mlp_norm = norm("mlp_norm")
        self.mlp_dense_1 = keras.layers.Dense(
            self.intermediate_dim,
            activation=self.activation,
            dtype=self.dtype_policy,
            name="mlp_dense_1",
        )
        self.mlp_dense_1.build(inputs_shape)
        self.mlp_dense_2 = keras.layers.Dense(
            hidden_dim, dtype=self.dtype_policy, name="mlp_dense_2"
        )
        self.mlp_dense_2.build(tuple(inputs_shape[:-1]) + (self.intermediate_dim,))
        self.dropout = keras.layers.Dropout(
            self.dropout_rate, dtype=self.dtype_policy, name="dropout"
        )

    def call(self, inputs, training=None):
        _, steps, patches, hidden_dim = inputs.shape
        x = inputs

        # Spatial attention: one sequence per (video, time step).
        h = ops.reshape(self.spatial_norm(x), (-1, patches, hidden_dim))
        h = self.spatial_attention(h, h, training=training)
        x = x + self.dropout(ops.reshape(h, (-1, steps, patches, hidden_dim)), training=training)

        # Temporal attention: one sequence per (video, spatial position).
        h = ops.transpose(self.temporal_norm(x), (0, 2, 1, 3))
        h = ops.reshape(h, (-1, steps, hidden_dim))
        h = self.temporal_attention(h, h, training=training)
        h = ops.transpose(ops.reshape(h, (-1, patches, steps, hidden_dim)), (0, 2, 1, 3))
        x = x + self.dropout(h, training=training)

        h = self.mlp_dense_2(self.mlp_dense_1(self.mlp_norm(x)))
        return x + self.dropout(h, training=training)

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout_rate": self.dropout_rate,
                "activation": keras.activations.serialize(self.activation),
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
