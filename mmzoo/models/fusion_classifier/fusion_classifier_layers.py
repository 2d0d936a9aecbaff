"""Layers only the fusion classifier uses: learned logit averaging (late
fusion), the gated multimodal unit (gated fusion) and an all-true mask for
token sequences that have no padding."""

import keras
from keras import ops

from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.validation import check_rank


def _check_modalities(layer_name, shapes):
    if not isinstance(shapes, (list, tuple)) or not shapes or not isinstance(
        shapes[0], (list, tuple)
    ):
        raise ValueError(
            f"`{layer_name}` takes a non-empty list of tensors, one per modality. "
            f"Received: inputs with shape {shapes!r}"
        )


@keras.saving.register_keras_serializable(package="mmzoo")
class WeightedLogitAverage(keras.layers.Layer):
    """Averages per-modality logits with learned softmax weights (late fusion).

    `outputs = sum_m softmax(w)_m * logits_m`, with one learned scalar `w_m`
    per modality, initialised to zero (a plain average). The weights say how
    much the model trusts each modality; see `modality_weights()`.

    Args:
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list of `(batch_size, num_classes)` logits, one per modality.

    Returns:
        `(batch_size, num_classes)`.

    Example:

    >>> average = WeightedLogitAverage()
    >>> average([np.zeros((2, 3)), np.ones((2, 3))]).shape
    (2, 3)
    """

    def build(self, inputs_shape):
        _check_modalities("WeightedLogitAverage", inputs_shape)
        self.modality_logits = self.add_weight(
            shape=(len(inputs_shape),), initializer="zeros", name="modality_logits"
        )

    def modality_weights(self):
        """The softmax weights, `(num_modalities,)`, summing to 1."""
        return ops.softmax(ops.cast(self.modality_logits, "float32"))

    def call(self, inputs):
        if len(inputs) == 1:  # the softmax of one weight is 1
            return inputs[0]
        stacked = ops.stack(inputs, axis=1)  # (batch, num_modalities, num_classes)
        weights = ops.cast(ops.softmax(self.modality_logits), stacked.dtype)
        return ops.einsum("bmc,m->bc", stacked, weights)

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape[0])


@keras.saving.register_keras_serializable(package="mmzoo")
class GatedModalityUnit(keras.layers.Layer):
    """Gated multimodal unit (GMU; Arevalo et al., 2017), for any number of modalities.

    Each modality's features are mapped to `h_m = tanh(W_m x_m)`; gates
    `z = sigmoid(W_z [x_1; ...; x_M])` computed from all modalities together
    weight them feature by feature: `outputs = sum_m z_m * h_m`. The paper's
    two-modality unit ties the gates (`z_2 = 1 - z_1`); here every modality
    has its own gate, so the unit can also switch all of them on or off.

    Args:
        hidden_dim: int. Size of `h_m` and of the output.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list of `(batch_size, dim_m)` feature vectors, one per
            modality (sizes may differ).
        return_gates: bool. Also return the gates.

    Returns:
        `(batch_size, hidden_dim)`; with `return_gates=True` also the gates
        `(batch_size, num_modalities, hidden_dim)` in (0, 1).

    Example:

    >>> unit = GatedModalityUnit(hidden_dim=8)
    >>> unit([np.zeros((2, 4)), np.zeros((2, 6))]).shape
    (2, 8)
    """

    def __init__(self, hidden_dim, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("hidden_dim", hidden_dim)
        self.hidden_dim = hidden_dim

    def build(self, inputs_shape):
        _check_modalities("GatedModalityUnit", inputs_shape)
        self.num_modalities = len(inputs_shape)
        self.feature_denses = []
        for i, shape in enumerate(inputs_shape):
            check_rank(f"inputs[{i}]", shape, 2, "(batch_size, dim)")
            dense = keras.layers.Dense(
                self.hidden_dim, activation="tanh", dtype=self.dtype_policy,
                name=f"feature_dense_{i}",
            )
            dense.build(shape)
            self.feature_denses.append(dense)
        total = sum(shape[-1] for shape in inputs_shape)
        self.gate_dense = keras.layers.Dense(
            self.num_modalities * self.hidden_dim, activation="sigmoid",
            dtype=self.dtype_policy, name="gate_dense",
        )
        self.gate_dense.build((inputs_shape[0][0], total))

    def call(self, inputs, return_gates=False):
        features = ops.stack(
            [dense(x) for dense, x in zip(self.feature_denses, inputs)], axis=1
        )
        gates = self.gate_dense(ops.concatenate(list(inputs), axis=-1))
        gates = ops.reshape(gates, (-1, self.num_modalities, self.hidden_dim))
        outputs = ops.sum(gates * features, axis=1)
        if return_gates:
            return outputs, gates
        return outputs

    def compute_output_shape(self, inputs_shape):
        return (inputs_shape[0][0], self.hidden_dim)

    def compute_output_spec(self, inputs, return_gates=False):
        dtype = self.compute_dtype
        batch_size = inputs[0].shape[0]
        output = keras.KerasTensor((batch_size, self.hidden_dim), dtype=dtype)
        if return_gates:
            gates = keras.KerasTensor((batch_size, len(inputs), self.hidden_dim), dtype=dtype)
            return output, gates
        return output

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim})
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class SequenceMask(keras.layers.Layer):
    """An all-true padding mask `(batch_size, sequence_length)` for a token
    sequence that has no padding (image patches), so it can be concatenated
    with the mask of a padded one (text) when several modalities form one
    attention context.

    Call arguments:
        inputs: `(batch_size, sequence_length, hidden_dim)`.

    Returns:
        bool `(batch_size, sequence_length)`, all True.

    Example:

    >>> SequenceMask()(np.zeros((2, 5, 8))).shape
    (2, 5)
    """

    def call(self, inputs):
        return ops.ones(ops.shape(inputs)[:2], dtype="bool")

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape[:2])

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(tuple(inputs.shape[:2]), dtype="bool")
