"""`Trainer`: a custom `tf.distribute` training loop for any Keras model.

Why not `model.fit`: under `MultiWorkerMirroredStrategy` Keras 3 fails with
`ValueError: Attempt to convert a value (PerReplica:{...})` (keras issue
20585), and `model.fit` clips each replica's gradient before summing them.

Layout (the same split as keras/src/backend/tensorflow/trainer.py): the
per-replica work is plain methods (`compute_loss`, `_replica_gradients`,
`_replica_update`, `_replica_loss`), and `_make_train_function` /
`_make_evaluate_function` wrap them in `strategy.run`, `tf.function` and XLA.
As in Keras, AutoGraph does not convert them: a `compute_loss` override uses
`keras.ops` (or `tf.cond`) rather than a Python `if` on a tensor's value.

One training step, per replica:

1. `_replica_gradients` (XLA-compiled when `jit_compile=True`): forward,
   loss as this replica's share of the global-batch mean, backward. With
   `accumulation_steps=N` it runs on N micro-batches in turn, summing.
   A loss that couples the rows of a batch (contrastive losses: every row's
   negatives are the other rows) is not a sum over micro-batches, so for it
   the N micro-batches go through `_replica_outputs` (forward, no gradients),
   `_replica_output_gradients` (the loss on all N micro-batches' outputs, and
   its gradient with respect to those outputs), then `_replica_gradients`
   again per micro-batch, back-propagating the cached output gradients
   (GradCache, Gao et al. 2021; what open_clip does for accumulation).
2. `_replica_update`: one all-reduce of the loss and the gradients, then
   `optimizer.apply`. With several replicas it is not compiled: XLA on CPU
   cannot compile collectives ("Collectives are not yet implemented for CPU
   devices when compiling with XLA"), and Keras's optimizer synchronises
   replicas with `merge_call`, which MirroredStrategy refuses inside a nested
   `tf.function`. On GPU the all-reduce could move into XLA; it is kept out
   everywhere (untested on GPUs here). With one replica there is no
   collective, and the whole step, update included, is one XLA function as in
   `model.fit`. Under TPUStrategy `strategy.run` compiles the step itself.

Because gradients are summed across replicas before `optimizer.apply`, the
optimizer's own cross-replica sum (Keras's TF optimizer does one inside
`apply`) is switched off while the step is traced, and the optimizer's
`global_clipnorm` clips the global gradient, so N replicas train exactly like
one device on the same global batch.

Input comes in one of two forms, both iterated by one ordinary `tf.data`
iterator per worker, whose position is checkpointed:

* A `tf.data.Dataset` of global batches. Every worker reads the whole global
  batch, and the step slices it into per-replica rows
  (`experimental_distribute_values_from_function`). Simple, but with N
  workers the reading and decoding is done N times.
* A dataset function, `dataset_fn(input_context)`, as
  `strategy.distribute_datasets_from_function` takes it: each worker calls it
  once with its own `tf.distribute.InputContext` and gets a dataset of
  per-replica batches holding only its share of the examples
  (`mmzoo.data.load_tfrecords` and `mmzoo.data.load_tfds` take
  `input_context` and read only that share).
  Each step hands every local replica the next batch of its worker's
  pipeline. Under a multi-worker strategy each worker checkpoints its own
  iterator beside the chief's checkpoint (`mmzoo.training.checkpoints`).

`strategy.distribute_datasets_from_function` itself is not used: its
distributed iterator cannot be checkpointed (tensorflow issue 56372; in
TensorFlow 2.21 `tf.train.Checkpoint` refuses it as not trackable), and exact
mid-epoch resume needs the iterator in the checkpoint.
"""

import contextlib
import math
import os
import signal
import sys
import threading

import keras
import tensorflow as tf
from keras import tree

from mmzoo.training.checkpoints import CheckpointSaver
from mmzoo.training.checkpoints import input_directory
from mmzoo.training.checkpoints import latest_checkpoint
from mmzoo.training.checkpoints import save_model
from mmzoo.training.strategies import get_strategy
from mmzoo.training.strategies import input_context
from mmzoo.training.strategies import is_chief
from mmzoo.training.strategies import is_multi_worker
from mmzoo.training.strategies import is_tpu_strategy
from mmzoo.training.training_log import TrainingLog

# Keras losses whose value is a mean over the local batch; Keras divides such a
# value by the number of replicas itself (keras/src/losses/loss.py,
# `scale_loss_for_distribution`).
_MEAN_REDUCTIONS = ("sum_over_batch_size", "mean")


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


def _inner_optimizer(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.inner_optimizer
    return optimizer


def _iter_layers(layer):
    yield layer
    for sublayer in getattr(layer, "layers", []):
        yield from _iter_layers(sublayer)


def _uses_float16(model):
    return any(
        getattr(getattr(layer, "dtype_policy", None), "name", None) == "mixed_float16"
        for layer in _iter_layers(model)
    )


@contextlib.contextmanager
def _without_optimizer_all_reduce(optimizer):
    """While tracing a step: the optimizer does not sum gradients across replicas.

    Keras's TF optimizer all-reduces gradients inside `apply`
    (`TFOptimizer._all_reduce_sum_gradients`), after its own clipping. The
    Trainer has already all-reduced them, so a second sum would multiply them
    by the number of replicas. The override exists only while the Python step
    is being traced (the graph keeps its effect), so the optimizer object is
    left as it was.
    """
    inner = _inner_optimizer(optimizer)
    if not hasattr(inner, "_all_reduce_sum_gradients"):
        raise RuntimeError(
            "This Keras version's TensorFlow optimizer has no "
            "`_all_reduce_sum_gradients`; mmzoo.training.Trainer must be updated "
            f"for keras {keras.__version__}."
        )
    inner._all_reduce_sum_gradients = lambda grads_and_vars: list(grads_and_vars)
    try:
        yield
    finally:
        del inner._all_reduce_sum_gradients


def _merges_replicas(strategy):
    """Whether the optimizer synchronises through `merge_call` under `strategy`."""
    return isinstance(
        strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)
    )


# The exit code after a SIGTERM checkpoint (TensorFlow's
# PreemptionCheckpointHandler uses the same outside Google Cloud).
PREEMPTION_EXIT_CODE = 42


def _graph(fn):
    """`fn` as a `tf.function` without AutoGraph, as Keras compiles its steps.

    The steps and the models are written in `keras.ops`, with no Python
    control flow on tensor values, so AutoGraph would only spend time
    rewriting their source (seconds per step for the tiny presets).
    """
    return tf.function(fn, autograph=False)


def _xla(fn):
    """`fn` as an XLA-compiled `tf.function` without AutoGraph (see `_graph`)."""
    return tf.function(fn, jit_compile=True, autograph=False)


def _static_batch_size(element_spec):
    """The batch dimension shared by every component, or None if not static."""
    sizes = set()
    for spec in tf.nest.flatten(element_spec):
        shape = getattr(spec, "shape", None)
        if shape is None or shape.rank is None or shape.rank == 0:
            return None
        sizes.add(shape[0])
    if len(sizes) != 1:
        return None
    return sizes.pop()


class Trainer:
    """Trains a Keras model with a custom `tf.distribute` loop.

    The model and optimizer variables must live under the strategy: either
    pass `model` built inside `strategy.scope()` (checked), or pass
    `model_fn`, a zero-argument callable that the Trainer calls inside the
    scope. An optimizer made outside the scope and not yet built is re-created
    from its config inside it (Keras optimizers bind to the strategy in scope
    when they are constructed); `trainer.optimizer` is the one in use.

    Features come from the Keras objects where Keras has them:

    * Mixed precision: build the model with `dtype="mixed_bfloat16"` (or
      `"mixed_float16"`, in which case the optimizer is wrapped in a
      `keras.optimizers.LossScaleOptimizer` unless it already is one). The loss
      is computed in float32.
    * Gradient clipping by global norm: the optimizer's `global_clipnorm`
      (applied to the global, all-reduced gradient; see the module docstring).
    * Learning-rate schedule: the optimizer's `learning_rate`, e.g.
      `mmzoo.training.warmup_cosine_decay(...)`.
    * Weight decay: `keras.optimizers.AdamW`.
    * EMA of the weights: the optimizer's `use_ema=True`; `evaluate` and
      `save_model` use the EMA weights by default when it is on, and
      `trainer.ema_weights()` swaps them in for any other use.

    The loss sees `loss(y_true, y_pred)` per replica, with `y_true` None when
    the dataset yields `x` alone (contrastive losses need only the outputs).
    It is averaged over the GLOBAL batch, as `tf.nn.compute_average_loss`
    does, so N replicas equal one device on the same global batch:

    * a `keras.losses.Loss` with reduction `"sum_over_batch_size"` (the
      default) is used as it is, since Keras already divides it by the number
      of replicas; `"sum"` is summed over replicas; `None` gives per-example
      values (averaged as below); `"mean_with_sample_weight"` is refused (its
      divisor differs per replica).
    * any other callable returning a scalar is taken as the mean over the
      local batch and divided by the number of replicas; one returning
      per-example values `(batch_size, ...)` is weighted by the sample
      weights (if any), averaged, and divided likewise.

    Regularisation losses (`model.losses`) are added, as Keras does.

    Checkpoints (model, model variables including dropout seeds, optimizer,
    step and the `tf.data` iterator) go to `model_dir` with a
    `tf.train.CheckpointManager`; `fit` restores the newest one, including the
    position in the dataset, so a run killed at any point and restarted ends
    exactly as an uninterrupted run would (bit for bit with op determinism on).

    Reproducibility: with `deterministic=True` the Trainer turns on
    TensorFlow's op determinism for the process
    (`tf.config.experimental.enable_op_determinism`, which also makes every
    `tf.data` stage run in order), so two runs with the same seeds, data and
    machine give bit-identical weights. Seed Keras first
    (`keras.utils.set_random_seed`). It costs speed; see
    `benchmarks/trainer_overhead.py`.

    On one worker, `fit` with a `model_dir` catches SIGTERM: the step in
    progress finishes, a checkpoint is written, and the process exits with
    code 42 (as the multi-worker handler below does); rerunning resumes.
    Under `MultiWorkerMirroredStrategy`, `fit` also wires a
    `tf.distribute.experimental.PreemptionCheckpointHandler` to the same
    checkpoint manager: on SIGTERM to any worker, all workers finish the same
    step, save a checkpoint and exit with code 42 (TensorFlow's default on
    machines other than Google Cloud); rerunning the same command resumes.
    (The handler installs a SIGTERM handler, so `fit` must run in the main
    thread there; each `fit` call makes its own handler.)
    Every worker runs the same input pipeline and keeps the rows of each
    global batch that belong to its replicas, so the run equals one process
    on the same global batch and the chief's iterator state restores all
    workers (the cost: each worker reads all the data).

    Args:
        model: a built `keras.Model`, or None with `model_fn`.
        loss: a `keras.losses.Loss` or a callable `loss(y_true, y_pred)`.
        optimizer: a Keras optimizer (instance or name).
        strategy: a `tf.distribute.Strategy`, or a name for `get_strategy`
            (which returns the same object for the same name, so a model
            built in `get_strategy(name).scope()` matches); None for the one
            in scope, by default TensorFlow's default strategy.
        model_fn: zero-argument callable returning the model, called in
            `strategy.scope()`.
        model_dir: str or None. Checkpoints, `metrics.jsonl` and
            `tensorboard/`; None trains without them.
        accumulation_steps: int. Micro-batches (dataset elements) per
            optimizer update; the update equals one on their concatenation,
            for per-example losses and for losses that couple the rows of a
            batch alike. A loss whose `couples_batch` attribute is True (the
            `mmzoo.losses` contrastive losses) is computed once on the
            outputs of all micro-batches, so every row sees the rows of
            every micro-batch (and replica) as negatives: the forward pass
            runs twice per micro-batch (once without gradients), and the
            activations held for back-propagation are one micro-batch's
            (the inputs and outputs of all k are held; see
            `benchmarks/contrastive_scale.py` for measured peaks). The model's
            non-trainable state (dropout seeds, batch-norm statistics) is
            rewound between the two passes, so both see the same dropout
            masks and the state advances once. Such a loss is called
            directly, not through an overridden `compute_loss`. A model
            with a momentum encoder (`has_momentum_encoder`, e.g. a
            `DualEncoder` built with `momentum=`) is refused there: every
            forward pass moves its momentum weights and feature queue.
        jit_compile: bool. XLA-compile the per-replica forward and backward
            (with one replica outside a mirrored strategy, the optimizer
            update too). False is needed when the loss does cross-replica
            work inside the step (e.g. an all-gather, which XLA on CPU cannot
            compile). With `deterministic=True`, a model with a max-pooling
            layer (keras-hub's ResNet) runs without XLA, which has no
            deterministic max-pool gradient; a line on stderr says so.
        deterministic: bool. Turn on op determinism (see above).

    Example:

    ```python
    strategy = mmzoo.training.get_strategy("mirrored")
    trainer = mmzoo.training.Trainer(
        model_fn=lambda: build_classifier(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=keras.optimizers.AdamW(
            mmzoo.training.warmup_cosine_decay(1e-3, total_steps=1000,
                                               warmup_steps=100),
            global_clipnorm=1.0),
        strategy=strategy,
        model_dir="runs/classifier",
    )
    history = trainer.fit(train_ds, steps=1000)   # resumes from runs/classifier
    trainer.evaluate(val_ds, steps=50)            # {"loss": ...}
    trainer.save_model("runs/classifier/final.keras")
    ```
    """

    def __init__(
        self,
        model=None,
        loss=None,
        optimizer=None,
        strategy=None,
        *,
        model_fn=None,
        model_dir=None,
        accumulation_steps=1,
        jit_compile=True,
        deterministic=False,
    ):
        if (model is None) == (model_fn is None):
            raise ValueError(
                "Pass exactly one of `model` and `model_fn`. Received: "
                f"model={model!r}, model_fn={model_fn!r}"
            )
        if not callable(loss):
            raise ValueError(f"`loss` must be callable. Received: loss={loss!r}")
        if isinstance(loss, keras.losses.Loss) and loss.reduction not in (
            *_MEAN_REDUCTIONS, "sum", None, "none"
        ):
            raise ValueError(
                "A Keras loss must use reduction 'sum_over_batch_size', 'sum' or "
                "None: other reductions do not average over the global batch. "
                f"Received: reduction={loss.reduction!r}"
            )
        if optimizer is None:
            raise ValueError("`optimizer` is required. Received: optimizer=None")
        _check_positive_int("accumulation_steps", accumulation_steps)
        for name, value in (("jit_compile", jit_compile), ("deterministic", deterministic)):
            if not isinstance(value, bool):
                raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")
        self.deterministic = deterministic
        if deterministic:
            # Process-wide; TensorFlow has no public call to turn it off again.
            tf.config.experimental.enable_op_determinism()

        if strategy is None:
            strategy = tf.distribute.get_strategy()
        elif isinstance(strategy, str):
            strategy = get_strategy(strategy)
        self.strategy = strategy
        self.loss = loss
        self.model_dir = os.fspath(model_dir) if model_dir else None
        self.accumulation_steps = accumulation_steps
        # A batch-coupled loss is not a sum over micro-batches: accumulate
        # through cached output gradients (see the module docstring).
        self._cache_outputs = accumulation_steps > 1 and bool(
            getattr(loss, "couples_batch", False)
        )
        # On TPU, `strategy.run` compiles the whole step with XLA already.
        self.jit_compile = jit_compile and not is_tpu_strategy(self.strategy)
        self.chief = is_chief(self.strategy)

        with self.strategy.scope():
            if model_fn is not None:
                model = model_fn()
            self._check_model(model)
            if self._cache_outputs and getattr(model, "has_momentum_encoder", False):
                raise ValueError(
                    "Cached gradient accumulation of a contrastive loss cannot run a "
                    "momentum encoder or feature queue: each of its forward passes moves "
                    "the momentum weights and the queue, so the micro-batches would not "
                    "add up to one batch. Use the queue for more negatives instead, or "
                    "build the model without `momentum`. Received: accumulation_steps="
                    f"{accumulation_steps}, a model with momentum={model.momentum}"
                )
            if self.jit_compile and deterministic and _has_max_pooling(model):
                # Under op determinism TensorFlow refuses to XLA-compile a
                # max-pool gradient ("GPU MaxPool gradient ops do not yet
                # have a deterministic XLA implementation", on CPU too), as
                # in keras-hub's ResNet stem.
                self.jit_compile = False
                if self.chief:
                    print(
                        "deterministic=True: the model max-pools, whose gradient XLA cannot "
                        "compute deterministically; the step runs without XLA.",
                        file=sys.stderr,
                    )
            self.model = model
            self.optimizer = self._prepare_optimizer(optimizer, model)
            # One per optimizer update; checkpointed. (`optimizer.iterations`
            # is not it: a LossScaleOptimizer skips non-finite steps.)
            self._step = tf.Variable(
                0,
                dtype=tf.int64,
                trainable=False,
                name="step",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
            # (global batch size, accumulation steps) of the run, checkpointed
            # so that a resume with another batch size is named, not left to
            # fail in the iterator's restore ("Incompatible shapes").
            self._input_shape = tf.Variable(
                [0, 0],
                dtype=tf.int64,
                trainable=False,
                name="input_shape",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
        self._gradients_fn = self._replica_gradients
        self._update_fn = self._replica_update
        self._loss_fn = self._replica_loss
        self._outputs_fn = self._replica_outputs
        self._output_gradients_fn = self._replica_output_gradients
        if self.jit_compile:
            self._gradients_fn = _xla(self._replica_gradients)
            self._loss_fn = _xla(self._replica_loss)
            self._outputs_fn = _xla(self._replica_outputs)
            self._output_gradients_fn = _xla(self._replica_output_gradients)
            if self.strategy.num_replicas_in_sync == 1 and not _merges_replicas(self.strategy):
                # No collective to keep out: the optimizer update joins the XLA
                # step too (as in model.fit), which fuses its many small ops.
                # Not under a mirrored strategy, even with one replica: Keras's
                # optimizer calls `merge_call` there, which a nested
                # tf.function refuses ("merge_call called while defining a
                # new graph or a tf.function").
                self._update_fn = _xla(self._replica_update)
        self._train_function = None
        self._train_key = None  # (global batch size, per-replica input)
        self._input_context = input_context(self.strategy)
        self._evaluate_function = None
        self.preemption_handler = None

    # ------------------------------------------------------------ set-up
    def _check_model(self, model):
        if not isinstance(model, keras.Model):
            raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
        if not model.built or not model.trainable_variables:
            raise ValueError(
                "The model must be built and have trainable variables (call it "
                f"once on a batch, or use a functional model). Received: model={model.name!r}"
            )
        outside = [
            v.path
            for v in model.variables
            if not self.strategy.extended.variable_created_in_scope(v.value)
        ]
        if outside:
            raise ValueError(
                "The model's variables were not created under this strategy's "
                "scope: build the model inside `strategy.scope()`, or pass "
                f"`model_fn` instead of `model`. Received: variables {outside[:3]}..."
            )

    def _prepare_optimizer(self, optimizer, model):
        optimizer = keras.optimizers.get(optimizer)
        inner = _inner_optimizer(optimizer)
        # Keras's TF optimizer keeps the strategy in scope at construction
        # (`_distribution_strategy`); one made elsewhere cannot update mirrored
        # variables ("Mixing different tf.distribute.Strategy objects").
        if getattr(inner, "_distribution_strategy", self.strategy) is not self.strategy:
            if optimizer.built:
                raise ValueError(
                    "The optimizer was built outside this strategy's scope; create "
                    "it inside `strategy.scope()` or pass it unbuilt. Received: "
                    f"optimizer={optimizer.name!r}"
                )
            optimizer = optimizer.__class__.from_config(optimizer.get_config())
        if _uses_float16(model) and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer
        ):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        return optimizer

    @property
    def step(self):
        """The global step: optimizer updates done, restored from checkpoints."""
        return int(self._step.numpy())

    # ------------------------------------------------ per-replica pieces
    def compute_loss(self, x, y, y_pred, sample_weight=None):
        """This replica's share of the loss averaged over the global batch.

        Summed over replicas it is the mean loss of the global batch, plus the
        model's regularisation losses. Override it for losses that need more
        than `loss(y, y_pred)`.
        """
        return self._data_loss_share(y, y_pred, sample_weight) + self._regularization_share()

    def _data_loss_share(self, y, y_pred, sample_weight=None):
        """`compute_loss` without the regularisation losses."""
        num_replicas = self.strategy.num_replicas_in_sync
        y_pred = tree.map_structure(_to_float32, y_pred)
        y = tree.map_structure(_to_float32, y) if y is not None else None
        if isinstance(self.loss, keras.losses.Loss):
            value = self.loss(y, y_pred, sample_weight=sample_weight)
            if self.loss.reduction in _MEAN_REDUCTIONS:
                share = value  # Keras divided it by the replicas already
            elif self.loss.reduction == "sum":
                share = value
            else:
                share = tf.reduce_mean(value) / num_replicas
        else:
            value = tf.convert_to_tensor(self.loss(y, y_pred))
            if sample_weight is not None:
                if value.shape.rank == 0:
                    raise ValueError(
                        "With sample weights, a loss callable must return per-example "
                        f"values of shape (batch_size, ...). Received: a scalar from {self.loss!r}"
                    )
                weight = tf.cast(sample_weight, value.dtype)
                weight = tf.reshape(weight, [-1] + [1] * (value.shape.rank - 1))
                value = value * weight
            share = tf.reduce_mean(value) / num_replicas
        return tf.cast(share, "float32")

    def _regularization_share(self):
        """This replica's share of the model's regularisation losses."""
        if not self.model.losses:
            return tf.constant(0.0)
        regularization = tf.add_n([tf.cast(l, "float32") for l in self.model.losses])
        return regularization / self.strategy.num_replicas_in_sync

    def _replica_gradients(self, data, accumulated=None, cached=None):
        """Loss share and gradients on one micro-batch (plus `accumulated`).

        `cached`, for a batch-coupled loss: `(loss share, output gradients)`
        of this micro-batch from `_replica_output_gradients`; the gradients
        are then those outputs' cached gradients back-propagated through the
        model (plus this micro-batch's share of the regularisation).
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        # The backend's tf.Variables: for a variable the loss does not reach
        # (a fixed temperature's logit scale), `UnconnectedGradients.ZERO`
        # cannot read the dtype of a Keras variable.
        variables = [v.value for v in self.model.trainable_variables]
        with tf.GradientTape() as tape:
            y_pred = self.model(x, training=True)
            if cached is None:
                # Each micro-batch carries 1/N of the accumulated step's mean.
                loss = self.compute_loss(x, y, y_pred, sample_weight) / self.accumulation_steps
                scaled_loss = self.optimizer.scale_loss(loss)
            else:
                data_share, output_grads = cached
                regularization = self._regularization_share() / self.accumulation_steps
                loss = data_share + regularization
                # d(loss)/d(weights) = sum over outputs of d(loss)/d(output)
                # . d(output)/d(weights): the gradient of this inner product.
                scaled_loss = self.optimizer.scale_loss(regularization) + tf.add_n([
                    tf.reduce_sum(_to_float32(output) * tf.stop_gradient(grad))
                    for output, grad in zip(tree.flatten(y_pred), tree.flatten(output_grads))
                    if grad is not None
                ])
        grads = tape.gradient(
            scaled_loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        # Dense gradients: an embedding's IndexedSlices gradient made the
        # XLA-compiled optimizer update recompile at every step (measured on
        # the captioning model: 16 s per step instead of 40 ms).
        grads = [tf.convert_to_tensor(g) for g in grads]
        if accumulated is not None:
            loss = loss + accumulated[0]
            grads = [g + a for g, a in zip(grads, accumulated[1])]
        return loss, grads

    def _replica_outputs(self, data):
        """The model's training-mode outputs on one micro-batch, no gradients."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return tree.map_structure(
            lambda t: tf.stop_gradient(_to_float32(t)), self.model(x, training=True)
        )

    def _replica_output_gradients(self, datas, outputs):
        """A batch-coupled loss on every micro-batch's outputs at once.

        Returns, per micro-batch, `(this replica's loss share / number of
        micro-batches, the gradient of the scaled loss with respect to that
        micro-batch's outputs)`; outputs that are not floating point get
        None.
        """
        concatenate = lambda *parts: tf.concat(parts, axis=0)  # noqa: E731
        unpacked = [keras.utils.unpack_x_y_sample_weight(data) for data in datas]
        y, sample_weight = (
            None if unpacked[0][i] is None
            else tree.map_structure(concatenate, *[u[i] for u in unpacked])
            for i in (1, 2)
        )
        joined = tree.map_structure(concatenate, *outputs)
        floating = [t for t in tree.flatten(joined) if t.dtype.is_floating]
        with tf.GradientTape() as tape:
            tape.watch(floating)
            loss = self._data_loss_share(y, joined, sample_weight)
            scaled_loss = self.optimizer.scale_loss(loss)
        grads = dict(zip(map(id, floating), tape.gradient(
            scaled_loss, floating, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )))
        sizes = [tf.shape(tree.flatten(o)[0])[0] for o in outputs]
        parts = [
            tf.split(grads[id(t)], sizes, axis=0) if id(t) in grads else [None] * len(sizes)
            for t in tree.flatten(joined)
        ]
        share = loss / self.accumulation_steps
        return [
            (share, tree.pack_sequence_as(joined, [p[micro] for p in parts]))
            for micro in range(len(outputs))
        ]

    def _replica_state(self):
        """The model's non-trainable state (seeds, statistics), read."""
        return [tf.identity(v.value) for v in self.model.non_trainable_variables]

    def _replica_set_state(self, values):
        for variable, value in zip(self.model.non_trainable_variables, values):
            variable.assign(value)

    def _replica_update(self, data, accumulated=None, cached=None):
        """Last micro-batch, all-reduce, optimizer update."""
        loss, grads = self._gradients_fn(data, accumulated, cached)
        if self.strategy.num_replicas_in_sync > 1:
            # Outside XLA (`_gradients_fn` is the compiled part): CPU
            # collectives cannot be compiled.
            context = tf.distribute.get_replica_context()
            loss, grads = context.all_reduce(tf.distribute.ReduceOp.SUM, (loss, grads))
        scale = self.optimizer.scale_loss(tf.constant(1.0))
        grad_norm = tf.linalg.global_norm(grads) / scale
        learning_rate = tf.cast(_learning_rate(self.optimizer), "float32")
        self.optimizer.apply(grads, self.model.trainable_variables)
        return loss, grad_norm, learning_rate

    # `strategy.run` is given plain functions around the compiled ones: given a
    # `tf.function` directly it re-wraps it and, on CPU, reads every replica's
    # variables from the first device.
    def _run_gradients(self, data, accumulated=None, cached=None):
        return self._gradients_fn(data, accumulated, cached)

    def _run_update(self, data, accumulated=None, cached=None):
        return self._update_fn(data, accumulated, cached)

    def _run_outputs(self, data):
        return self._outputs_fn(data)

    def _run_output_gradients(self, datas, outputs):
        return self._output_gradients_fn(datas, outputs)

    def _replica_loss(self, data):
        """(Loss share without regularisation, regularisation share, weight sum)."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self.model(x, training=False)
        regularization = self._regularization_share()
        # Through `compute_loss`, which subclasses may override, then without
        # the regularisation: `evaluate` weighs the data part by examples.
        data_share = self.compute_loss(x, y, y_pred, sample_weight) - regularization
        if sample_weight is None:
            weight = tf.cast(tf.shape(tree.flatten(x)[0])[0], "float32")
        else:
            weight = tf.reduce_sum(tf.cast(sample_weight, "float32"))
        return data_share, regularization, weight

    # ---------------------------------------- distribution + XLA wrapper
    def _next_data(self, iterator, batch_size, per_replica=False):
        """The next global batch, one value per replica.

        With `per_replica`, the iterator yields per-replica batches (this
        worker's pipeline): each local replica takes the next one in turn.
        """
        if not per_replica:
            return self._distribute(next(iterator), batch_size)
        strategy = self.strategy
        local_replicas = strategy.num_replicas_in_sync // self._input_context.num_input_pipelines
        batches = [next(iterator) for _ in range(local_replicas)]
        if strategy.num_replicas_in_sync == 1:
            return batches[0]
        # Replicas are numbered worker by worker.
        return strategy.experimental_distribute_values_from_function(
            lambda context: batches[context.replica_id_in_sync_group % local_replicas]
        )

    def _distribute(self, data, batch_size):
        """Splits a global batch into one slice per replica (rows in order)."""
        num_replicas = self.strategy.num_replicas_in_sync
        if num_replicas == 1:
            return data
        per_replica = batch_size // num_replicas
        shards = [
            tree.map_structure(lambda t, i=i: t[i * per_replica : (i + 1) * per_replica], data)
            for i in range(num_replicas)
        ]
        return self.strategy.experimental_distribute_values_from_function(
            lambda context: shards[context.replica_id_in_sync_group]
        )

    def _make_train_function(self, batch_size, per_replica):
        strategy = self.strategy

        def train_function(iterator):
            with _without_optimizer_all_reduce(self.optimizer):
                if self._cache_outputs:
                    outputs = self._cached_step(iterator, batch_size, per_replica)
                else:
                    outputs = self._summed_step(iterator, batch_size, per_replica)
            self._step.assign_add(1)
            # Every replica holds the same all-reduced values.
            return tree.map_structure(
                lambda v: strategy.experimental_local_results(v)[0], outputs
            )

        return _graph(train_function)

    def _summed_step(self, iterator, batch_size, per_replica):
        """One update, summing the micro-batches' gradients."""
        accumulated = None
        for _ in range(self.accumulation_steps - 1):
            data = self._next_data(iterator, batch_size, per_replica)
            accumulated = self.strategy.run(self._run_gradients, args=(data, accumulated))
        data = self._next_data(iterator, batch_size, per_replica)
        return self.strategy.run(self._run_update, args=(data, accumulated))

    def _cached_step(self, iterator, batch_size, per_replica):
        """One update for a batch-coupled loss (see the module docstring)."""
        strategy = self.strategy
        datas = [
            self._next_data(iterator, batch_size, per_replica)
            for _ in range(self.accumulation_steps)
        ]
        state = strategy.run(self._replica_state)
        outputs = [strategy.run(self._run_outputs, args=(data,)) for data in datas]
        # Rewind seeds and statistics: the second pass then draws the same
        # dropout masks, and the state advances once per micro-batch.
        strategy.run(self._replica_set_state, args=(state,))
        cached = strategy.run(self._run_output_gradients, args=(datas, outputs))
        accumulated = None
        for data, micro in zip(datas[:-1], cached[:-1]):
            accumulated = strategy.run(self._run_gradients, args=(data, accumulated, micro))
        return strategy.run(self._run_update, args=(datas[-1], accumulated, cached[-1]))

    def _make_evaluate_function(self, batch_size):
        strategy = self.strategy

        def evaluate_function(iterator):
            data = self._distribute(next(iterator), batch_size)
            values = strategy.run(self._replica_eval_step, args=(data,))
            return tree.map_structure(
                lambda v: strategy.experimental_local_results(v)[0], values
            )

        return _graph(evaluate_function)

    def _replica_eval_step(self, data):
        values = self._loss_fn(data)
        if self.strategy.num_replicas_in_sync == 1:
            return values
        context = tf.distribute.get_replica_context()
        return context.all_reduce(tf.distribute.ReduceOp.SUM, values)

    def _check_dataset(self, dataset, per_replica=False):
        """The global batch size of `dataset` (of per-replica batches if `per_replica`)."""
        if not isinstance(dataset, tf.data.Dataset):
            raise ValueError(
                "`dataset` must be a tf.data.Dataset, or a function that takes a "
                "tf.distribute.InputContext and returns one. Received: "
                f"dataset={dataset!r}"
            )
        batch_size = _static_batch_size(dataset.element_spec)
        if batch_size is None:
            raise ValueError(
                "The dataset must have a static batch size shared by all its "
                "components (batch it with `drop_remainder=True`). Received: "
                f"element_spec={dataset.element_spec}"
            )
        num_replicas = self.strategy.num_replicas_in_sync
        if per_replica:
            return batch_size * num_replicas
        if batch_size % num_replicas:
            raise ValueError(
                "The dataset's batch size must be divisible by the number of "
                f"replicas ({num_replicas}). Received: batch_size={batch_size}"
            )
        return batch_size

    # ------------------------------------------------------------- fit
    def _make_checkpoint(self, iterator=None, input_shape=False):
        objects = {
            "model": self.model,
            # Also the states of dropout seed generators, which the model's
            # own checkpoint dependencies miss.
            "model_variables": list(self.model.variables),
            "optimizer": self.optimizer,
            "step": self._step,
        }
        if isinstance(self.optimizer, keras.optimizers.MultiOptimizer):
            # Its sub-optimizers' states (moments, iterations) are not among
            # its checkpoint dependencies (Keras 3.15).
            objects["sub_optimizers"] = list(self.optimizer.optimizers)
        if iterator is not None:
            objects["iterator"] = iterator
        if input_shape:
            objects["input_shape"] = self._input_shape
        return tf.train.Checkpoint(**objects)

    def _check_resumed_input(self, path, batch_size, per_replica=False, worker_input=False):
        """Names both batch sizes when a run resumes with another one.

        Also refuses to resume a run whose input was read whole by every
        worker with a dataset function, and the other way round: the
        checkpoint holds the input position of the form it was trained with.

        Returns whether the checkpoint records its input shape (checkpoints
        written before it did are restored without it).
        """
        reader = tf.train.load_checkpoint(path)
        key = "input_shape/.ATTRIBUTES/VARIABLE_VALUE"
        if not reader.has_tensor(key):
            return False
        has_iterator = any(
            name.startswith("iterator/") for name in reader.get_variable_to_shape_map()
        )
        if worker_input and has_iterator:
            raise ValueError(
                f"The run in model_dir={self.model_dir!r} was trained on one tf.data.Dataset "
                "that every worker read whole; its checkpoint holds that dataset's position, "
                "not one per worker. Resume it with the same tf.data.Dataset, or start a new "
                "run in another model_dir. Received: a dataset function"
            )
        if not worker_input and not has_iterator:
            raise ValueError(
                f"The run in model_dir={self.model_dir!r} was trained on a dataset function, "
                "each worker reading its own share; its checkpoints hold one input position "
                "per worker (model_dir/input/). Resume it with the same dataset function on "
                "the same number of workers, or start a new run in another model_dir. "
                "Received: " + ("a dataset function in one process" if per_replica
                                else "a tf.data.Dataset")
            )
        saved_batch, saved_accumulation = (int(v) for v in reader.get_tensor(key))
        if (saved_batch, saved_accumulation) != (batch_size, self.accumulation_steps):
            raise ValueError(
                f"The run in model_dir={self.model_dir!r} was trained with a global batch "
                f"of {saved_batch} (accumulation_steps={saved_accumulation}); this dataset "
                f"has batches of {batch_size} (accumulation_steps={self.accumulation_steps}). "
                "Its checkpoint holds the dataset position for the saved batch size, so "
                f"resume with batch_size={saved_batch} (`--batch-size {saved_batch}`), or "
                "start a new run in another model_dir. Received: "
                f"batch_size={batch_size}, saved batch_size={saved_batch}"
            )
        return True

    def restore(self):
        """Restores the newest checkpoint of `model_dir` (model, optimizer, step).

        `fit` restores by itself (the dataset position too); call this to
        evaluate or export a trained run.

        Returns:
            The restored step, or None when `model_dir` holds no checkpoint.
        """
        return self._restore(self._make_checkpoint())

    def _restore_worker_input(self, input_checkpoint, latest):
        """Restores this worker's input position of the chief's checkpoint `latest`."""
        directory = input_directory(self.model_dir, self._input_context)
        path = os.path.join(directory, os.path.basename(latest))
        if not tf.io.gfile.exists(path + ".index"):
            found = sorted(tf.io.gfile.glob(os.path.join(self.model_dir, "input", "pipeline-*")))
            raise ValueError(
                f"The checkpoint {latest!r} has no input position for this worker's "
                f"pipeline ({path!r} is missing). The run was trained with the input "
                f"pipelines {[os.path.basename(p) for p in found]}: resume it on the same "
                "number of workers. Received: input pipeline "
                f"{self._input_context.input_pipeline_id} of "
                f"{self._input_context.num_input_pipelines}"
            )
        status = input_checkpoint.restore(path)
        status.assert_existing_objects_matched()
        status.expect_partial()

    def _restore(self, checkpoint):
        path = latest_checkpoint(self.model_dir)
        if path is None:
            return None
        status = checkpoint.restore(path)
        status.assert_existing_objects_matched()
        status.expect_partial()
        return self.step

    def fit(
        self,
        dataset,
        steps,
        checkpoint_every=1000,
        keep_checkpoints=3,
        log_every=100,
        verbose=1,
        callbacks=None,
    ):
        """Trains until the global step reaches `steps`.

        `steps` counts optimizer updates over the whole run, not this call:
        after restoring the checkpoint of step k from `model_dir`, `fit` runs
        `steps - k` more (none if k >= steps), continuing from the same
        position in `dataset`. Pass the same dataset (same pipeline and seeds)
        when resuming.

        A non-finite loss stops training with `FloatingPointError` naming the
        step; that step is never checkpointed, so `model_dir` keeps the last
        good checkpoint (the in-memory weights are those after the bad step).

        Args:
            dataset: `tf.data.Dataset` of `(x, y)`, `(x, y, sample_weight)`
                or `x` alone, batched with a static batch size (the global
                batch, divisible by the number of replicas); usually repeated.
                Or a dataset function, `dataset_fn(input_context)`, that
                returns this worker's share of the data in per-replica batches
                (the form `strategy.distribute_datasets_from_function` takes;
                `input_context.get_per_replica_batch_size(global_batch)`), so
                that under a multi-worker strategy each worker reads and
                decodes only its share; it must repeat, since all workers take
                part in every step.
            steps: int. Target global step.
            checkpoint_every: int. Steps between checkpoints; one is also
                written at the last step. Needs `model_dir`.
            keep_checkpoints: int. Newest checkpoints kept in `model_dir`.
            log_every: int. Steps between rows of `metrics.jsonl` and
                TensorBoard (the row's loss is the mean since the last row);
                the last step is always logged.
            verbose: int. 1 for a progress bar (loss, examples/s, ETA), 0 for
                none. Only the chief shows or writes anything.
            callbacks: list of `keras.callbacks.Callback`. Their
                `on_train_begin/end` and `on_train_batch_begin/end` hooks are
                called (`batch` is the global step, `logs` holds `loss`);
                setting `model.stop_training = True` stops after the step.

        Returns:
            The logged rows, a list of dicts with `step`, `loss`,
            `learning_rate`, `gradient_norm` and `examples_per_second`.
        """
        _check_positive_int("steps", steps)
        _check_positive_int("checkpoint_every", checkpoint_every)
        _check_positive_int("keep_checkpoints", keep_checkpoints)
        _check_positive_int("log_every", log_every)
        per_replica = callable(dataset) and not isinstance(dataset, tf.data.Dataset)
        if per_replica:
            dataset_fn = dataset
            dataset = dataset_fn(self._input_context)
            if not isinstance(dataset, tf.data.Dataset):
                raise ValueError(
                    "The dataset function must return a tf.data.Dataset. Received: "
                    f"{dataset!r} from {dataset_fn!r}"
                )
        batch_size = self._check_dataset(dataset, per_replica)
        # Each worker keeps the position of its own share beside the chief's checkpoint.
        worker_input = per_replica and is_multi_worker(self.strategy)

        if self.model_dir and dataset.options().experimental_external_state_policy is None:
            # Stateful Python functions in a pipeline (`tf.numpy_function(...,
            # stateful=True)`) make tf.data refuse to checkpoint the iterator
            # ("PyFunc is stateful"). Save it anyway, with TensorFlow's warning:
            # any state they keep would not be restored. (mmzoo's own pipelines
            # have none: their Python functions are declared stateless.)
            options = tf.data.Options()
            options.experimental_external_state_policy = (
                tf.data.experimental.ExternalStatePolicy.WARN
            )
            dataset = dataset.with_options(options)
        latest = latest_checkpoint(self.model_dir)
        records_input = True
        if latest is not None:
            records_input = self._check_resumed_input(
                latest, batch_size, per_replica, worker_input
            )
        iterator = iter(dataset)
        input_checkpoint = None
        if worker_input:
            checkpoint = self._make_checkpoint(input_shape=True)
            input_checkpoint = tf.train.Checkpoint(iterator=iterator)
            if latest is not None:
                self._restore_worker_input(input_checkpoint, latest)
        else:
            checkpoint = self._make_checkpoint(iterator, input_shape=True)
        self._restore(checkpoint if records_input else self._make_checkpoint(iterator))
        self._input_shape.assign([batch_size, self.accumulation_steps])
        self._check_long_enough(dataset, steps, per_replica)
        saver = None
        if self.model_dir:
            saver = CheckpointSaver(
                checkpoint, self.model_dir, self.strategy, keep_checkpoints,
                input_checkpoint=input_checkpoint,
                input_directory=(
                    input_directory(self.model_dir, self._input_context)
                    if worker_input else None
                ),
            )
            if is_multi_worker(self.strategy):
                self.preemption_handler = (
                    tf.distribute.experimental.PreemptionCheckpointHandler(
                        self.strategy.cluster_resolver,
                        saver.manager,
                        # Through the saver: the workers' input positions too.
                        termination_config=tf.distribute.experimental.TerminationConfig(
                            save_fn=lambda checkpoint_number: saver.save(checkpoint_number)
                        ),
                    )
                )
        if self._train_function is None or self._train_key != (batch_size, per_replica):
            self._train_function = self._make_train_function(batch_size, per_replica)
            self._train_key = (batch_size, per_replica)

        initial_step = self.step
        log = TrainingLog(
            self.model_dir,
            initial_step,
            max(steps, initial_step),
            batch_size * self.accumulation_steps,
            verbose,
            enabled=self.chief,
        )
        callbacks = keras.callbacks.CallbackList(callbacks, model=self.model)
        rows = []
        self.model.stop_training = False
        terminated = threading.Event()
        catch_sigterm = saver is not None and self.preemption_handler is None and (
            threading.current_thread() is threading.main_thread()
        )
        if catch_sigterm:
            previous_handler = signal.signal(signal.SIGTERM, lambda *_: terminated.set())
        saved_step = initial_step
        try:
            callbacks.on_train_begin()
            log.begin()
            for step in range(initial_step + 1, steps + 1):
                callbacks.on_train_batch_begin(step)
                try:
                    loss, grad_norm, learning_rate = self._train_function(iterator)
                except tf.errors.OutOfRangeError:
                    if saver is not None and saved_step < step - 1:
                        saver.save(step - 1)
                    raise ValueError(
                        f"The dataset ended at step {step} of steps={steps}: it holds too "
                        "few batches for the run. Repeat it (`dataset.repeat()`; mmzoo's "
                        "pipelines repeat by default) or lower `steps`. Received: a dataset "
                        f"that ran out after {step - 1} steps"
                    ) from None
                loss = float(loss)
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"Non-finite loss at step {step}: training stopped without "
                        "checkpointing this step; the last good checkpoint (if any) stays "
                        f"in model_dir={self.model_dir!r}. Received: loss={loss} at step {step}"
                    )
                log.step_end(step, loss)
                last = step == steps or self.model.stop_training
                if step % log_every == 0 or last:
                    rows.append(
                        log.log(step, learning_rate=learning_rate, gradient_norm=grad_norm)
                    )
                callbacks.on_train_batch_end(step, {"loss": loss})
                last = last or self.model.stop_training
                if saver is not None and (
                    step % checkpoint_every == 0 or last or terminated.is_set()
                ):
                    saver.save(step)
                    saved_step = step
                    log.flush()
                if terminated.is_set():
                    print(
                        f"mmzoo: SIGTERM: saved the checkpoint of step {step} in "
                        f"{self.model_dir}; rerun the same command to resume.",
                        file=sys.stderr,
                    )
                    raise SystemExit(PREEMPTION_EXIT_CODE)
                if self.preemption_handler is not None:
                    # Saves through `saver.manager` and exits when any worker
                    # got SIGTERM (all workers stop after the same step).
                    self.preemption_handler.save_checkpoint_if_preempted(
                        checkpoint_number=step
                    )
                if self.model.stop_training:
                    break
            callbacks.on_train_end({"loss": rows[-1]["loss"]} if rows else None)
        finally:
            if catch_sigterm:
                # (None when the previous handler was not set from Python.)
                signal.signal(signal.SIGTERM, previous_handler or signal.SIG_DFL)
            log.close()
            if saver is not None:
                saver.close()
        return rows

    def _check_long_enough(self, dataset, steps, per_replica=False):
        """Says at the start when a finite dataset cannot feed `steps`."""
        cardinality = int(dataset.cardinality())
        if cardinality < 0:  # infinite or unknown
            return
        needed = (steps - self.step) * self.accumulation_steps
        if per_replica:  # a batch per local replica
            needed *= self.strategy.num_replicas_in_sync // self._input_context.num_input_pipelines
        if self.step == 0 and cardinality < needed:
            raise ValueError(
                f"The dataset holds {cardinality} batches, but steps={steps} with "
                f"accumulation_steps={self.accumulation_steps} needs {needed}. Repeat it "
                "(`dataset.repeat()`; mmzoo's pipelines repeat by default) or lower `steps`. "
                f"Received: dataset.cardinality()={cardinality}"
            )

    # -------------------------------------------------------- evaluate
    def evaluate(self, dataset, steps=None, use_ema_weights=None):
        """Mean loss over `steps` batches of `dataset` (all of it if None).

        With sample weights (`(x, y, sample_weight)` batches, such as the
        padded last batch of an mmzoo pipeline with `repeat=False`, whose
        padding weighs 0), the loss is the weighted mean over the examples:
        padded rows do not count. Regularisation losses are added once (their
        mean over the batches).

        Args:
            dataset: `tf.data.Dataset`, as for `fit` (static global batch).
            steps: int or None. Batches to evaluate; None runs until the
                dataset ends (it must be finite).
            use_ema_weights: bool or None. Evaluate with the optimizer's EMA
                weights; None means "if the optimizer keeps an EMA".

        Returns:
            `{"loss": float}`: the mean over the evaluated examples.
        """
        if steps is not None:
            _check_positive_int("steps", steps)
        batch_size = self._check_dataset(dataset)
        if self._evaluate_function is None or self._evaluate_batch_size != batch_size:
            self._evaluate_function = self._make_evaluate_function(batch_size)
            self._evaluate_batch_size = batch_size
        iterator = iter(dataset)
        # A "sum" loss is a total per batch already; the others are the
        # global batch's mean, i.e. the weighted sum over `batch_size`.
        per_example = getattr(self.loss, "reduction", None) != "sum"
        total, weights, regularization, count = 0.0, 0.0, 0.0, 0
        with self._maybe_ema_weights(use_ema_weights):
            while steps is None or count < steps:
                try:
                    data_share, regularization_share, weight = self._evaluate_function(iterator)
                except tf.errors.OutOfRangeError:
                    break
                total += float(data_share) * (batch_size if per_example else 1.0)
                weights += float(weight) if per_example else 1.0
                regularization += float(regularization_share)
                count += 1
        if count == 0:
            raise ValueError("The evaluation dataset is empty. Received: 0 batches")
        if weights <= 0:
            raise ValueError(
                "Every evaluated example has sample weight 0. Received: a weight sum of 0 "
                f"over {count} batches"
            )
        return {"loss": total / weights + regularization / count}

    # ------------------------------------------------------ EMA, saving
    def _maybe_ema_weights(self, use_ema_weights):
        if use_ema_weights is None:
            use_ema_weights = bool(_inner_optimizer(self.optimizer).use_ema)
        return self.ema_weights() if use_ema_weights else contextlib.nullcontext()

    @contextlib.contextmanager
    def ema_weights(self):
        """Context manager: the model holds the EMA weights inside it.

        The optimizer must have been created with `use_ema=True`. The
        trained weights are swapped back (bit for bit) on exit.
        """
        inner = _inner_optimizer(self.optimizer)
        if not inner.use_ema:
            raise ValueError(
                "The optimizer keeps no EMA of the weights; create it with "
                "`use_ema=True`. Received: use_ema=False"
            )
        self._swap_ema_weights(inner)
        try:
            yield self.model
        finally:
            self._swap_ema_weights(inner)

    def _swap_ema_weights(self, inner):
        # The averages live in the optimizer, aligned with its variables (as
        # keras.callbacks.SwapEMAWeights reads them). Swapped per device copy.
        def swap(variable, average):
            value = tf.identity(variable)
            variable.assign(average)
            average.assign(value)

        for variable, average in zip(
            inner._trainable_variables, inner._model_variables_moving_average
        ):
            self.strategy.extended.update(
                variable.value, swap, args=(average.value,), group=True
            )

    def save_model(self, filepath, use_ema_weights=None):
        """Saves the model atomically to a `.keras` file (chief only).

        Args:
            filepath: str ending in `.keras`.
            use_ema_weights: bool or None. Save the EMA weights; None means
                "if the optimizer keeps an EMA".

        Returns:
            `filepath`, or None on a non-chief worker (which writes nothing).
        """
        with self._maybe_ema_weights(use_ema_weights):
            if not self.chief:
                return None
            return save_model(self.model, filepath)


def _to_float32(x):
    if x is None:
        return None
    x = tf.convert_to_tensor(x) if not isinstance(x, tf.Tensor) else x
    return tf.cast(x, "float32") if x.dtype.is_floating else x


def _learning_rate(optimizer):
    """The optimizer's current rate; a `MultiOptimizer`'s first optimizer's."""
    if isinstance(optimizer, keras.optimizers.MultiOptimizer):
        return optimizer.optimizers[0].learning_rate
    return optimizer.learning_rate


def _has_max_pooling(model):
    """Whether `model` (or a layer nested in it) is a Keras max-pooling layer."""
    pooling = (
        keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D
    )
    return any(isinstance(layer, pooling) for layer in model._flatten_layers())
