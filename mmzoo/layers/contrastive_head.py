import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmzoo")
class ContrastiveHead(keras.layers.Layer):
    """Pairwise similarity logits between two batches of embeddings.

    Both inputs are L2-normalised; the logits are
    `logit_scale * a @ b.T + logit_bias`. The scale is learned in log space
    and clamped at `max_logit_scale` (CLIP clamps at 100 so that training stays
    stable); the bias is optional (SigLIP initialises scale 10, bias -10).

    Args:
        initial_temperature: float > 0. The logit scale starts at
            `1 / initial_temperature` (CLIP: 0.07; SigLIP: 0.1).
        max_logit_scale: float. Upper clamp of the logit scale.
        use_bias: bool. Learn an additive logit bias (SigLIP).
        initial_bias: float. Starting bias when `use_bias` (SigLIP: -10).
        trainable_temperature: bool. Learn the scale, or keep it fixed.
        epsilon: float. Added under the square root of the norm.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        embeddings: `(batch_a, dim)`.
        other_embeddings: `(batch_b, dim)`.

    Returns:
        Logits `(batch_a, batch_b)`; row `i` scores `embeddings[i]` against
        every row of `other_embeddings`.

    Example:

    >>> head = mmzoo.layers.ContrastiveHead()
    >>> head(np.ones((4, 8)), np.ones((6, 8))).shape
    (4, 6)
    """

    def __init__(
        self,
        initial_temperature=0.07,
        max_logit_scale=100.0,
        use_bias=False,
        initial_bias=0.0,
        trainable_temperature=True,
        epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(initial_temperature, (int, float)) or initial_temperature <= 0:
            raise ValueError(
                "`initial_temperature` must be a positive float. "
                f"Received: initial_temperature={initial_temperature!r}"
            )
        if not isinstance(max_logit_scale, (int, float)) or max_logit_scale <= 0:
            raise ValueError(
                "`max_logit_scale` must be a positive float. "
                f"Received: max_logit_scale={max_logit_scale!r}"
            )
        if 1.0 / initial_temperature > max_logit_scale:
            raise ValueError(
                "`1 / initial_temperature` must not exceed `max_logit_scale` "
                f"({max_logit_scale}). Received: initial_temperature={initial_temperature}"
            )
        self.initial_temperature = initial_temperature
        self.max_logit_scale = max_logit_scale
        self.use_bias = use_bias
        self.initial_bias = initial_bias
        self.trainable_temperature = trainable_temperature
        self.epsilon = epsilon

    def build(self, embeddings_shape, other_embeddings_shape=None):
        self.log_logit_scale = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(math.log(1.0 / self.initial_temperature)),
            trainable=self.trainable_temperature,
            name="log_logit_scale",
        )
        self.logit_bias = None
        if self.use_bias:
            self.logit_bias = self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(self.initial_bias),
                name="logit_bias",
            )

    @property
    def logit_scale(self):
        """The clamped scale, `min(exp(log_logit_scale), max_logit_scale)`."""
        return ops.minimum(ops.exp(self.log_logit_scale), self.max_logit_scale)

    def normalize(self, embeddings):
        """L2-normalises the last axis."""
        squared = ops.sum(ops.square(embeddings), axis=-1, keepdims=True)
        return embeddings * ops.rsqrt(squared + self.epsilon)

    def call(self, embeddings, other_embeddings):
        a = self.normalize(embeddings)
        b = self.normalize(other_embeddings)
        logits = ops.matmul(a, ops.transpose(b)) * ops.cast(self.logit_scale, a.dtype)
        if self.logit_bias is not None:
            logits = logits + ops.cast(self.logit_bias, a.dtype)
        return logits

    def compute_output_shape(self, embeddings_shape, other_embeddings_shape):
        return (embeddings_shape[0], other_embeddings_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "initial_temperature": self.initial_temperature,
                "max_logit_scale": self.max_logit_scale,
                "use_bias": self.use_bias,
                "initial_bias": self.initial_bias,
                "trainable_temperature": self.trainable_temperature,
                "epsilon": self.epsilon,
            }
        )
        return config
