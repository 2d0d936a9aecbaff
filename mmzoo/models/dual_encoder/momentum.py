"""The momentum encoder and feature queue of `DualEncoder` / `TwoViewEncoder`.

MoCo (He et al. 2020, v2: Chen et al. 2020) and ALBEF (Li et al. 2021) keep a
copy of the towers whose weights follow the trained ones as an exponential
moving average ("momentum encoder"), and a first-in first-out queue of the
copy's past embeddings ("keys"). The contrastive loss then scores each
embedding against the keys of the batch and of the queue, so the number of
negatives is the queue's size, not the batch's, at the cost of one more
forward pass without gradients.

Everything happens in the model's training-mode forward pass, so `model.fit`
and `mmzoo.training.Trainer` both run it: first the copy's weights move
towards the trained ones, `copy = momentum * copy + (1 - momentum) *
trained` (before the keys are computed, as MoCo and ALBEF do), then the copy
encodes the batch, the loss reads the queue as it was before this step, and
the batch's keys, gathered across replicas, replace the oldest entries. The
copy's weights, the queue, its write position and fill count are
non-trainable variables of the model: saved in its `.keras` file and in
training checkpoints, so resume is exact.
"""

import keras
from keras import ops

from mmzoo.layers.validation import check_positive_int


def check_momentum(momentum, queue_size):
    """`(momentum, queue_size)` checked: None or a float in [0, 1), an int >= 0."""
    if momentum is not None and (
        isinstance(momentum, bool)
        or not isinstance(momentum, (int, float))
        or not 0 <= momentum < 1
    ):
        raise ValueError(
            "`momentum` must be None (no momentum encoder) or a float in [0, 1), the "
            "weight of the momentum encoder's previous weights in its moving average "
            f"(MoCo uses 0.999, ALBEF 0.995). Received: momentum={momentum!r}"
        )
    if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 0:
        raise ValueError(
            "`queue_size` must be an int >= 0 (0: no feature queue). Received: "
            f"queue_size={queue_size!r}"
        )
    if queue_size and momentum is None:
        raise ValueError(
            "A feature queue holds the momentum encoder's embeddings: pass `momentum` "
            f"(e.g. 0.995) with `queue_size`. Received: momentum=None, queue_size={queue_size}"
        )
    return (None if momentum is None else float(momentum)), queue_size


def momentum_copy(layer):
    """A frozen copy of a built `layer` with its weights, named `"momentum_" +
    name` (its serialized build config builds it)."""
    config = keras.saving.serialize_keras_object(layer)
    config["config"]["name"] = f"momentum_{layer.name}"
    copy = keras.saving.deserialize_keras_object(config)
    copy.trainable = False
    pairs = list(zip(copy.weights, layer.weights))
    if len(copy.weights) != len(layer.weights) or any(
        tuple(a.shape) != tuple(b.shape) for a, b in pairs
    ):
        raise ValueError(
            f"The momentum copy of {layer.name!r} does not have its weights (its config "
            "does not rebuild it). Received: "
            f"{[tuple(w.shape) for w in layer.weights][:4]}... against "
            f"{[tuple(w.shape) for w in copy.weights][:4]}..."
        )
    for target, source in pairs:
        # A copy of the values: on JAX, variables sharing one buffer could
        # not both be donated to a compiled step.
        target.assign(ops.copy(source.value))
    return copy


def moving_average_pairs(copies, originals):
    """`(copy variable, trained variable)` pairs the moving average updates:
    the floating-point weights (not seed-generator states)."""
    pairs = []
    for copy, original in zip(copies, originals):
        for target, source in zip(copy.weights, original.weights):
            if "float" in str(target.dtype):
                pairs.append((target, source))
    return pairs


@keras.saving.register_keras_serializable(package="mmzoo")
class FeatureQueue(keras.layers.Layer):
    """First-in first-out queues of past embeddings, one per embedding name.

    The queues of a MoCo / ALBEF momentum encoder: `(size, dim)` float32
    variables, a write position and a fill count, all non-trainable (saved
    with the model and in checkpoints). `push` writes a batch of embeddings
    over the oldest entries of every queue; entries never written are masked
    out by `mask`.

    Args:
        size: int > 0. Entries per queue; a multiple of the global batch
            size that `push` receives.
        dim: int > 0. Embedding size.
        names: list of str, one queue per name (e.g. `["image", "text"]`).
        **kwargs: base layer arguments.

    Example:

    >>> queue = mmzoo.models.dual_encoder.FeatureQueue(8, 4, ["image"])
    >>> queue.push({"image": np.ones((4, 4))})
    >>> int(np.sum(queue.read()["queue_mask"]))
    4
    """

    def __init__(self, size, dim, names, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.size = check_positive_int("size", size)
        self.dim = check_positive_int("dim", dim)
        if not names or not all(isinstance(n, str) for n in names):
            raise ValueError(f"`names` must be a non-empty list of str. Received: names={names!r}")
        self.names = list(names)
        self.queues = {
            name: self.add_weight(
                shape=(self.size, self.dim), initializer="zeros", trainable=False,
                name=f"{name}_queue",
            )
            for name in self.names
        }
        # Where the next batch is written, and how many entries were written.
        self.position = self.add_weight(
            shape=(), dtype="int32", initializer="zeros", trainable=False, name="position"
        )
        self.filled = self.add_weight(
            shape=(), dtype="int32", initializer="zeros", trainable=False, name="filled"
        )
        self.built = True

    def read(self):
        """`{name + "_queue": (size, dim)}` and `queue_mask` (size,) bool: the
        queues as they are now (a copy; entries never written are zeros and
        False in the mask)."""
        mask = ops.arange(self.size, dtype="int32") < self.filled.value
        values = {
            f"{name}_queue": ops.where(mask[:, None], self.queues[name].value, 0.0)
            for name in self.names
        }
        values["queue_mask"] = mask
        return values

    def push(self, embeddings):
        """Writes `{name: (batch, dim)}` over the oldest entries of each queue.

        The batch size must be static and divide `size` (MoCo's rule: a
        batch is never split across the end of the queue).
        """
        batch = None
        for name in self.names:
            value = embeddings[name]
            batch = value.shape[0]
            if batch is None:
                raise ValueError(
                    "A feature queue needs batches of a static size (batch the dataset "
                    "with `drop_remainder=True`). Received: embeddings of shape "
                    f"{tuple(value.shape)}"
                )
            if self.size % batch:
                raise ValueError(
                    f"`queue_size` must be a multiple of the global batch size, so that "
                    f"no batch is split across the end of the queue. Received: "
                    f"queue_size={self.size}, global batch size {batch}"
                )
        position = self.position.value
        rows = ops.expand_dims((position + ops.arange(batch, dtype="int32")) % self.size, 1)
        for name in self.names:
            queue = self.queues[name]
            value = ops.cast(embeddings[name], queue.dtype)
            queue.assign(ops.scatter_update(queue.value, rows, value))
        self.position.assign((position + batch) % self.size)
        self.filled.assign(ops.minimum(self.filled.value + batch, self.size))

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "dim": self.dim, "names": self.names})
        return config
