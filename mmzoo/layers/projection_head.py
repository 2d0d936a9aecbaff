import keras

from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.validation import check_rate


@keras.saving.register_keras_serializable(package="mmzoo")
class ProjectionHead(keras.layers.Layer):
    """Projects features into a shared embedding space.

    With `intermediate_dim=None` this is the single linear map of CLIP; with an
    `intermediate_dim` it is the two-layer MLP of SimCLR (Dense -> activation ->
    dropout -> Dense).

    Args:
        projection_dim: int. Output size.
        intermediate_dim: int or None. Hidden size of the optional MLP.
        activation: str or callable. Hidden activation of the MLP.
        dropout_rate: float. Dropout after the hidden activation.
        use_bias: bool.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(..., hidden_dim)`.

    Returns:
        `(..., projection_dim)`.

    Example:

    >>> head = mmzoo.layers.ProjectionHead(projection_dim=16, intermediate_dim=64)
    >>> head(np.zeros((4, 32))).shape
    (4, 16)
    """

    def __init__(
        self,
        projection_dim,
        intermediate_dim=None,
        activation="gelu",
        dropout_rate=0.0,
        use_bias=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        projection_dim = check_positive_int("projection_dim", projection_dim)
        if intermediate_dim is not None:
            intermediate_dim = check_positive_int("intermediate_dim", intermediate_dim)
        dropout_rate = check_rate("dropout_rate", dropout_rate)
        self.projection_dim = projection_dim
        self.intermediate_dim = intermediate_dim
        self.activation = keras.activations.get(activation)
        self.dropout_rate = dropout_rate
        self.use_bias = use_bias
        self.hidden_dense = None
        if intermediate_dim is not None:
            self.hidden_dense = keras.layers.Dense(
                intermediate_dim,
                activation=self.activation,
                use_bias=use_bias,
                dtype=self.dtype_policy,
                name="hidden_dense",
            )
            self.dropout = keras.layers.Dropout(
                dropout_rate, dtype=self.dtype_policy, name="dropout"
            )
        self.output_dense = keras.layers.Dense(
            projection_dim, use_bias=use_bias, dtype=self.dtype_policy, name="output_dense"
        )

    def build(self, inputs_shape):
        shape = inputs_shape
        if self.hidden_dense is not None:
            self.hidden_dense.build(shape)
            shape = self.hidden_dense.compute_output_shape(shape)
        self.output_dense.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        if self.hidden_dense is not None:
            x = self.dropout(self.hidden_dense(x), training=training)
        return self.output_dense(x)

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape[:-1]) + (self.projection_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "projection_dim": self.projection_dim,
                "intermediate_dim": self.intermediate_dim,
                "activation": keras.activations.serialize(self.activation),
                "dropout_rate": self.dropout_rate,
                "use_bias": self.use_bias,
            }
        )
        return config
