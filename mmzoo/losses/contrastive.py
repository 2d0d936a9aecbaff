"""Contrastive losses for dual encoders: CLIP (InfoNCE), SigLIP and NT-Xent.

All three take the output dict of a `mmzoo.models.DualEncoder` (the two
towers' embeddings, `logit_scale`, `logit_bias`) rather than a precomputed
logit matrix, because under a `tf.distribute` strategy they use the
embeddings of every replica as negatives: each replica all-gathers the
embeddings of the global batch and scores its own rows against all of them,
with the gradient flowing back to each replica's own shard (the "local loss
+ gather with grad" scheme of open_clip's `ClipLoss(local_loss=True,
gather_with_grad=True)`). Per replica, the logits are
`(local_batch, global_batch)` instead of `(global_batch, global_batch)`.

The loss of each local row is returned (reduction `"sum_over_batch_size"`
averages them and Keras divides by the number of replicas), so the sum over
replicas is exactly the loss of one device on the whole global batch, and so
are the gradients once summed across replicas (as `model.fit` and
`mmzoo.training.Trainer` do): `ReplicaContext.all_gather`'s gradient is the
all-reduced (summed) upstream gradient sliced to the replica's own rows.
"""

import keras
from keras import ops

# Floor of the squared norm in `_normalize`: a floor, not an added term, so
# unit vectors stay as they are, and a zero row has finite gradients.
_EPSILON = 1e-12
# The logit of a column that is not a candidate (a queue entry not written
# yet): finite, so that the softmax and its gradient stay finite.
_MASKED = -1e9


def gather_from_replicas(embeddings):
    """All-gathers `embeddings` along the batch axis across replicas.

    With the TensorFlow backend inside a `tf.distribute` replica context with
    more than one replica, returns the concatenation of every replica's
    `embeddings` (in replica order) and the row offset of this replica's
    shard in it; the gradient with respect to the gathered tensor is summed
    over replicas and sliced back to each replica's rows. Everywhere else
    (one device, cross-replica context, the JAX backend) it returns
    `(embeddings, 0)` unchanged.

    XLA on CPU cannot compile the collective ("Collectives are not yet
    implemented for CPU devices when compiling with XLA"): with several CPU
    replicas, train with `jit_compile=False` (`model.compile(...,
    jit_compile=False)` or `mmzoo.training.Trainer(..., jit_compile=False)`).
    This function raises a clear error when it detects that case.

    Args:
        embeddings: `(local_batch, dim)` tensor.

    Returns:
        `(gathered (global_batch, dim), offset)`, `offset` an int or int32
        scalar tensor: the global index of this replica's first row.

    Example:

    ```python
    all_texts, offset = mmzoo.losses.gather_from_replicas(text_embeddings)
    logits = image_embeddings @ ops.transpose(all_texts)  # (local, global)
    labels = offset + ops.arange(local_batch)
    ```
    """
    if keras.config.backend() != "tensorflow":
        return embeddings, 0
    import tensorflow as tf  # only for the TensorFlow backend

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return embeddings, 0
    _check_no_cpu_xla_collective(tf, context)
    gathered = context.all_gather(embeddings, axis=0)
    if embeddings.shape[0] is not None:  # the collective drops static shapes
        gathered.set_shape(
            [context.num_replicas_in_sync * embeddings.shape[0], *embeddings.shape[1:]]
        )
    replica_id = context.replica_id_in_sync_group
    offset = ops.cast(replica_id, "int32") * ops.shape(embeddings)[0]
    return gathered, offset


def _check_no_cpu_xla_collective(tf, context):
    """Raises early, with the fix, instead of XLA's error at run time."""
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # private module moved: let XLA report the error
        return
    graph = tf.compat.v1.get_default_graph()
    if not control_flow_util.GraphOrParentsInXlaContext(graph):
        return
    devices = context.strategy.extended.worker_devices
    if any("CPU" in device.upper() for device in devices):
        raise RuntimeError(
            "Contrastive losses all-gather embeddings across replicas, and XLA "
            "cannot compile collectives on CPU devices. Train with "
            "`jit_compile=False` (`model.compile(..., jit_compile=False)` or "
            "`mmzoo.training.Trainer(..., jit_compile=False)`). Received: "
            f"{context.num_replicas_in_sync} CPU replicas {list(devices)} inside "
            "an XLA-compiled function"
        )


def _normalize(x, dtype):
    x = ops.cast(x, dtype)
    return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), _EPSILON))


def _check_hard_negative_beta(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(
            "`hard_negative_beta` must be a float >= 0 (0: every negative weighs the "
            f"same). Received: hard_negative_beta={value!r}"
        )
    return float(value)


def _weight_hard_negatives(logits, negatives, beta):
    """Logits whose softmax denominator weighs negatives by hardness.

    The estimator of Robinson et al. 2021 ("Contrastive Learning with Hard
    Negative Samples", their code's `reweight_neg`): each negative `j` of a
    row weighs `w_j = exp(beta * l_j) / mean_k exp(beta * l_k)` (the mean over
    the row's negatives, so the weights sum to their number), which is the
    same as adding `log w_j` to its logit. Positives and masked-out entries
    (`negatives` False) are returned unchanged. `beta=0` is plain InfoNCE.
    """
    if beta == 0:
        return logits
    count = ops.sum(ops.cast(negatives, logits.dtype), axis=-1, keepdims=True)
    concentrated = ops.where(negatives, beta * logits, ops.full_like(logits, -float("inf")))
    log_mean = ops.logsumexp(concentrated, axis=-1, keepdims=True) - ops.log(count)
    return ops.where(negatives, (1.0 + beta) * logits - log_mean, logits)


class ContrastiveLoss(keras.losses.Loss):
    """Base class: reads `DualEncoder` / `TwoViewEncoder` outputs, returns per-row losses.

    `y_pred` is a dict with exactly two `*_embeddings` entries of shape
    `(batch_size, dim)` (`image_embeddings` and `text_embeddings`, or
    `view_1_embeddings` and `view_2_embeddings`; the
    losses are symmetric, so their order does not matter), `logit_scale` and
    optionally `logit_bias`, scalars or `(batch_size,)` with one copy per
    example (as the model outputs them). `y_true` is ignored (None is fine):
    row `i` of one tower is the positive of row `i` of the other.

    A `DualEncoder` or `TwoViewEncoder` passes its whole output dict to these
    losses (see `DualEncoder.compute_loss`), so `model.compile(loss=CLIPLoss())` works
    with datasets that yield inputs only.
    """

    # `DualEncoder.compute_loss` gives losses with this flag the whole dict.
    takes_output_dict = True
    # Every row's negatives are the other rows, so the loss of a batch is not
    # the sum of its micro-batches' losses: `mmzoo.training.Trainer` then
    # accumulates through cached output gradients.
    couples_batch = True
    # Whether the loss reads a momentum encoder's `*_keys` and queue.
    takes_momentum = False

    def __call__(self, y_true=None, y_pred=None, sample_weight=None):
        if not isinstance(y_pred, dict):
            raise ValueError(
                f"`{type(self).__name__}` takes the output dict of a DualEncoder "
                "(two `*_embeddings` entries and `logit_scale`). Received: "
                f"y_pred of type {type(y_pred).__name__}"
            )
        # Keras converts `y_true` to a tensor; there are no labels here.
        y_true = ops.zeros(()) if y_true is None else y_true
        return super().__call__(y_true, y_pred, sample_weight)

    def _embeddings(self, y_pred):
        keys = sorted(k for k in y_pred if k.endswith("_embeddings"))
        if len(keys) != 2:
            raise ValueError(
                "`y_pred` must hold exactly two `*_embeddings` entries. Received: "
                f"keys {sorted(y_pred)}"
            )
        first, second = (_normalize(y_pred[k], self.dtype) for k in keys)
        return first, second

    def _momentum(self, y_pred):
        """The momentum encoder's outputs for the two embeddings, or None.

        Returns `(keys, queues, queue_mask)`: the two `*_keys` tensors
        `(batch, dim)` L2-normalised, in the order of `_embeddings`, and,
        with a feature queue, the two `*_queue` tensors `(queue_size, dim)`
        and `queue_mask` `(queue_size,)` bool (None and None without).
        """
        names = sorted(k[: -len("_embeddings")] for k in y_pred if k.endswith("_embeddings"))
        if not any(k.endswith("_keys") for k in y_pred):
            return None
        if not self.takes_momentum:
            raise ValueError(
                f"`{type(self).__name__}` does not use a momentum encoder's keys or "
                "feature queue (a model built with `momentum=`); train such a model "
                "with `mmzoo.losses.CLIPLoss`. Received: outputs "
                f"{sorted(k for k in y_pred if k.endswith(('_keys', '_queue')))}"
            )
        wanted = [f"{name}_keys" for name in names]
        if any(k not in y_pred for k in wanted):
            raise ValueError(
                f"With a momentum encoder, `y_pred` must hold {wanted}. Received: keys "
                f"{sorted(y_pred)}"
            )
        keys = tuple(_normalize(y_pred[k], self.dtype) for k in wanted)
        if "queue_mask" not in y_pred:
            return keys, None, None
        queues = tuple(_normalize(y_pred[f"{name}_queue"], self.dtype) for name in names)
        return keys, queues, ops.cast(y_pred["queue_mask"], "bool")

    def _scale(self, y_pred, key, default=None):
        value = y_pred.get(key)
        if value is None:
            if default is None:
                raise ValueError(
                    f"`y_pred` must hold `{key}`. Received: keys {sorted(y_pred)}"
                )
            return ops.convert_to_tensor(default, self.dtype)
        value = ops.cast(value, self.dtype)
        # One copy per example (so that the outputs batch like the rest).
        return ops.reshape(value, (-1,))[0] if len(value.shape) else value


def _cross_entropy(logits, labels):
    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


@keras.saving.register_keras_serializable(package="mmzoo")
class CLIPLoss(ContrastiveLoss):
    """Symmetric InfoNCE of CLIP, with global negatives across replicas.

    For embeddings `x` (images) and `y` (texts), L2-normalised, and the
    model's learned, clamped scale `s = logit_scale` (`1 / temperature`,
    `ContrastiveHead` clamps it at 100) and bias `b` (usually 0):
    `logits = s * x @ y.T + b`, and the loss of pair `i` is
    `(CE(logits[i, :], i) + CE(logits[:, i], i)) / 2`. Under a strategy,
    row `i` is scored against the embeddings of every replica.

    With a momentum encoder (a `DualEncoder` or `TwoViewEncoder` built with
    `momentum=`, in training mode), the candidates are the momentum
    encoder's embeddings of the batch (`*_keys`, of every replica) and then
    the feature queue (`*_queue`; entries not written yet are left out):
    image `i` is scored against every text key and queued text, its
    positive the key of text `i`, and text `i` likewise against the image
    keys and queue (ALBEF's image-text contrastive loss without
    distillation; for two views, MoCo v2's symmetric loss). No gradient
    flows through the keys and the queue. In inference mode (evaluation)
    the model has no keys and the loss is the in-batch one above.

    Args:
        hard_negative_beta: float >= 0. Weighs each negative of the softmax
            denominator by `exp(beta * logit)`, normalised to mean 1 over the
            row's negatives (Robinson et al. 2021, "Contrastive Learning with
            Hard Negative Samples"): larger values concentrate the loss on
            the negatives most similar to the anchor. 0 (the default) is
            CLIP's loss.
        reduction: as for `keras.losses.Loss` (`"sum_over_batch_size"` is
            the mean over the global batch once summed over replicas).
        name: as for `keras.losses.Loss`.
        dtype: the dtype the loss is computed in (embeddings, scale and
            logits are cast to it), e.g. `"float64"`; by default
            `keras.config.floatx()`.

    Call arguments:
        y_true: ignored (None).
        y_pred: the `DualEncoder` output dict (see `ContrastiveLoss`).

    Returns:
        The mean loss (per-pair losses `(batch_size,)` with `reduction=None`).

    Example:

    ```python
    model = mmzoo.presets.build_from_preset("dual_encoder_tiny")
    model.compile(optimizer="adam", loss=mmzoo.losses.CLIPLoss())
    model.fit(dataset_of_inputs)  # {"images", "token_ids", "padding_mask"}
    ```
    """

    takes_momentum = True

    def __init__(
        self,
        hard_negative_beta=0.0,
        reduction="sum_over_batch_size",
        name="clip_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.hard_negative_beta = _check_hard_negative_beta(hard_negative_beta)

    def call(self, y_true, y_pred):
        x, y = self._embeddings(y_pred)
        scale = self._scale(y_pred, "logit_scale")
        bias = self._scale(y_pred, "logit_bias", default=0.0)
        momentum = self._momentum(y_pred)
        if momentum is None:
            x_columns, y_columns = x, y
        else:
            (x_columns, y_columns), _, _ = momentum
        all_x, offset = gather_from_replicas(x_columns)
        all_y, _ = gather_from_replicas(y_columns)
        labels = offset + ops.arange(ops.shape(x)[0], dtype="int32")
        valid = None
        if momentum is not None and momentum[1] is not None:
            (x_queue, y_queue), mask = momentum[1], momentum[2]
            all_x = ops.concatenate([all_x, x_queue], axis=0)
            all_y = ops.concatenate([all_y, y_queue], axis=0)
            batch_columns = ops.ones((ops.shape(all_x)[0] - ops.shape(mask)[0],), "bool")
            valid = ops.concatenate([batch_columns, mask], axis=0)
        x_to_y = scale * ops.matmul(x, ops.transpose(all_y)) + bias  # (local, columns)
        y_to_x = scale * ops.matmul(y, ops.transpose(all_x)) + bias
        negatives = ops.logical_not(ops.cast(ops.one_hot(labels, ops.shape(all_y)[0]), "bool"))
        if valid is not None:
            negatives = ops.logical_and(negatives, valid[None, :])
        x_to_y = _weight_hard_negatives(x_to_y, negatives, self.hard_negative_beta)
        y_to_x = _weight_hard_negatives(y_to_x, negatives, self.hard_negative_beta)
        if valid is not None:  # queue entries not written yet
            x_to_y = ops.where(valid[None, :], x_to_y, _MASKED)
            y_to_x = ops.where(valid[None, :], y_to_x, _MASKED)
        return 0.5 * (_cross_entropy(x_to_y, labels) + _cross_entropy(y_to_x, labels))

    def get_config(self):
        config = super().get_config()
        config["hard_negative_beta"] = self.hard_negative_beta
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class SigLIPLoss(ContrastiveLoss):
    """Pairwise sigmoid loss of SigLIP, with global negatives across replicas.

    With `z[i, j] = s * x[i] . y[j] + b` (L2-normalised embeddings, the
    model's learned scale `s` and bias `b`; SigLIP starts at `s = 10`,
    `b = -10`), every pair is a binary problem, positive on the diagonal:
    the loss of row `i` is `-sum_j log sigmoid(sign(i == j) * z[i, j])`,
    and the batch loss their mean (the paper's `1 / |B|` normalisation).
    Under a strategy, each replica scores its own `x` rows against the `y`
    of every replica.

    Args:
        reduction, name: as for `keras.losses.Loss`.
        dtype: the dtype the loss is computed in (see `CLIPLoss`).

    Call arguments:
        y_true: ignored (None).
        y_pred: the `DualEncoder` output dict; `logit_bias` is required (build
            the model with `use_bias=True`).

    Example:

    ```python
    model = mmzoo.models.build_dual_encoder(
        image_encoder, text_encoder, projection_dim=64,
        initial_temperature=0.1, use_bias=True, initial_bias=-10.0)
    model.compile(optimizer="adam", loss=mmzoo.losses.SigLIPLoss())
    ```
    """

    def __init__(self, reduction="sum_over_batch_size", name="siglip_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        x, y = self._embeddings(y_pred)
        self._momentum(y_pred)  # refused
        scale = self._scale(y_pred, "logit_scale")
        bias = self._scale(y_pred, "logit_bias")
        all_y, offset = gather_from_replicas(y)
        logits = scale * ops.matmul(x, ops.transpose(all_y)) + bias  # (local, global)
        labels = offset + ops.arange(ops.shape(x)[0], dtype="int32")
        positive = ops.one_hot(labels, ops.shape(all_y)[0], dtype=self.dtype)
        signs = 2.0 * positive - 1.0
        return -ops.sum(ops.log_sigmoid(signs * logits), axis=-1)


@keras.saving.register_keras_serializable(package="mmzoo")
class NTXentLoss(ContrastiveLoss):
    """NT-Xent of SimCLR over the 2N views of a batch, global across replicas.

    The two towers' embeddings are two views of the same N examples. Each of
    the 2N views is an anchor whose positive is the other view of its
    example and whose negatives are the other 2N - 2 views (both towers; the
    anchor itself is excluded): the loss of anchor `u` is
    `CE(sim(u, all views) / temperature, positive)` with cosine similarity.
    The loss of example `i` is the mean of its two anchors' losses, so the
    batch mean equals the paper's mean over 2N anchors.

    Args:
        temperature: float > 0, or None to use the model's
            `1 / logit_scale` (build it with `trainable_temperature=False`
            for SimCLR's fixed temperature).
        hard_negative_beta: float >= 0. Hard-negative weighting of the
            2N - 2 negatives of each anchor (see `CLIPLoss`); 0 is NT-Xent.
        reduction, name: as for `keras.losses.Loss`.
        dtype: the dtype the loss is computed in (see `CLIPLoss`).

    Call arguments:
        y_true: ignored (None).
        y_pred: the `TwoViewEncoder` output dict (two views' embeddings).

    Example:

    ```python
    encoder = mmzoo.presets.build_from_preset("vit_image_encoder_tiny")
    model = mmzoo.models.build_two_view_encoder(encoder, projection_dim=32)
    model.compile(optimizer="adam", loss=mmzoo.losses.NTXentLoss(temperature=0.1))
    model.fit(views)  # {"view_1_images", "view_2_images"}
    ```
    """

    def __init__(
        self,
        temperature=None,
        hard_negative_beta=0.0,
        reduction="sum_over_batch_size",
        name="nt_xent_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.hard_negative_beta = _check_hard_negative_beta(hard_negative_beta)
        if temperature is not None and (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or temperature <= 0
        ):
            raise ValueError(
                "`temperature` must be a positive float or None. "
                f"Received: temperature={temperature!r}"
            )
        self.temperature = temperature

    def call(self, y_true, y_pred):
        x, y = self._embeddings(y_pred)
        self._momentum(y_pred)  # refused
        if self.temperature is None:
            scale = self._scale(y_pred, "logit_scale")
        else:
            scale = ops.convert_to_tensor(1.0 / self.temperature, self.dtype)
        all_x, offset = gather_from_replicas(x)
        all_y, _ = gather_from_replicas(y)
        local_batch = ops.shape(x)[0]
        global_batch = ops.shape(all_x)[0]
        labels = offset + ops.arange(local_batch, dtype="int32")
        # Columns: [all x views, all y views]; the anchor itself is masked out.
        all_views = ops.transpose(ops.concatenate([all_x, all_y], axis=0))
        x_self = ops.one_hot(labels, 2 * global_batch, dtype=self.dtype)
        y_self = ops.one_hot(labels + global_batch, 2 * global_batch, dtype=self.dtype)
        x_logits = scale * ops.matmul(x, all_views) - 1e9 * x_self
        y_logits = scale * ops.matmul(y, all_views) - 1e9 * y_self
        # An anchor's negatives: every view but itself and its positive.
        negatives = ops.cast(1.0 - x_self - y_self, "bool")
        x_logits = _weight_hard_negatives(x_logits, negatives, self.hard_negative_beta)
        y_logits = _weight_hard_negatives(y_logits, negatives, self.hard_negative_beta)
        x_loss = _cross_entropy(x_logits, labels + global_batch)
        y_loss = _cross_entropy(y_logits, labels)
        return 0.5 * (x_loss + y_loss)

    def get_config(self):
        config = super().get_config()
        config["temperature"] = self.temperature
        config["hard_negative_beta"] = self.hard_negative_beta
        return config
