"""`get_strategy`: a `tf.distribute.Strategy` by name.

The strategy decides where variables live, so the model and the optimizer must
be created under its `scope()` (or handed to `Trainer` as `model_fn`, which the
Trainer builds there).
"""

import itertools
import os

import tensorflow as tf

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")

# One strategy per name and arguments per process (see `get_strategy`).
_STRATEGIES = {}
# Collective keys of the MirroredStrategy objects made here start at
# 1 + 100_000 * k instead of 1, so they do not collide with those of a
# strategy made directly with `tf.distribute.MirroredStrategy(...)` in the same
# process (which start at 1).
_KEY_BASES = itertools.count(1)
_KEY_BASE_STEP = 100_000


def get_strategy(name="auto", **kwargs):
    """Returns a `tf.distribute.Strategy` chosen by name.

    * `"auto"`: a TPU if one is found (`TPU_NAME` is set or a TPU device is
      visible), else `"mirrored"` when there is more than one GPU, else
      `"one_device"` on the only GPU, else TensorFlow's default strategy
      (no distribution, ops placed as usual).
    * `"one_device"`: `OneDeviceStrategy` on the first GPU, or on `/cpu:0`.
    * `"mirrored"`: `MirroredStrategy` over all GPUs; without a GPU, over all
      logical CPU devices (the tests split the CPU in two this way).
    * `"multi_worker"`: `MultiWorkerMirroredStrategy` configured from the
      `TF_CONFIG` environment variable. Create it at the start of the
      program, before any other TensorFlow op runs (a TensorFlow requirement).
    * `"tpu"`: `TPUStrategy` after connecting to and initialising the TPU
      system (`tpu` keyword argument, default `""`: the local TPU or
      `TPU_NAME`).

    Args:
        name: str. One of `"auto"`, `"one_device"`, `"mirrored"`,
            `"multi_worker"`, `"tpu"`.
        **kwargs: passed to the strategy constructor (for example
            `devices=[...]` for `"mirrored"`, `device=...` for
            `"one_device"`, `communication_options=...` for
            `"multi_worker"`, `tpu=...` for `"tpu"`).

    Returns:
        A `tf.distribute.Strategy`. Repeated calls with the same arguments
        return the same object. (TensorFlow numbers the collective ops of
        every `MirroredStrategy` from the same keys, so two of them over the
        same devices in one process fail at run time with "Shape mismatch in
        the collective instance"; the mirrored strategies made here also
        number theirs from a separate range, so they coexist with one made
        directly with `tf.distribute.MirroredStrategy`.)

    Example:

    ```python
    strategy = mmzoo.training.get_strategy("mirrored")
    with strategy.scope():
        model = build_model()
        optimizer = keras.optimizers.AdamW(1e-3)
    ```
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy. Expected one of {list(STRATEGIES)}. "
            f"Received: strategy={name!r}"
        )
    if name == "auto":
        if _tpu_available():
            return get_strategy("tpu", **kwargs)
        num_gpus = len(tf.config.list_logical_devices("GPU"))
        if num_gpus > 1:
            return get_strategy("mirrored", **kwargs)
        if num_gpus == 1:
            return get_strategy("one_device", **kwargs)
        return tf.distribute.get_strategy()
    if name == "mirrored" and "devices" not in kwargs:
        gpus = tf.config.list_logical_devices("GPU")
        kwargs["devices"] = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
    if name == "one_device" and "device" not in kwargs:
        kwargs["device"] = "/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0"
    try:
        key = (name, tuple(sorted((k, _hashable(v)) for k, v in kwargs.items())))
        hash(key)
    except TypeError:
        return _make_strategy(name, **kwargs)
    if key not in _STRATEGIES:
        _STRATEGIES[key] = _make_strategy(name, **kwargs)
    return _STRATEGIES[key]


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def _make_strategy(name, **kwargs):
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(**kwargs)
    if name == "mirrored":
        return _mirrored_strategy(**kwargs)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy(**kwargs)
    return _tpu_strategy(**kwargs)


def _mirrored_strategy(**kwargs):
    # `_collective_key_base` is the only way TensorFlow offers to move a
    # strategy's collective keys (it reads the class attribute while it is
    # constructed; TensorFlow's own tests set it the same way).
    cls = tf.distribute.MirroredStrategy
    previous = cls._collective_key_base
    cls._collective_key_base = _KEY_BASE_STEP * next(_KEY_BASES)
    try:
        return cls(**kwargs)
    finally:
        cls._collective_key_base = previous


def _tpu_available():
    # Only local checks: asking the cluster resolver without a TPU may query the
    # GCE metadata server, which blocks on machines without network.
    return bool(os.environ.get("TPU_NAME")) or bool(tf.config.list_logical_devices("TPU"))


def _tpu_strategy(tpu="", **kwargs):
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver, **kwargs)


def is_multi_worker(strategy):
    """Whether `strategy` spans more than one worker process."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    resolver = strategy.cluster_resolver
    return bool(resolver and resolver.cluster_spec().as_dict())


def is_chief(strategy):
    """Whether this process should write logs, metrics and the real checkpoints.

    True except on the non-chief workers of a multi-worker strategy (the chief
    is task `chief` 0, or `worker` 0 when the cluster has no `chief` job).
    """
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def input_context(strategy):
    """The `tf.distribute.InputContext` of this process's input pipeline.

    One input pipeline per worker process, numbered as TensorFlow numbers
    workers (the `chief` task first, then the `worker` tasks), so that
    `dataset_fn(input_context(strategy))` is the dataset this worker reads
    under `strategy`, as `strategy.distribute_datasets_from_function` would
    call it.

    Example:

    ```python
    strategy = mmzoo.training.get_strategy("multi_worker")
    context = mmzoo.training.input_context(strategy)
    examples, report = mmzoo.data.load_tfrecords("shards/", (224, 224),
                                                 input_context=context)
    ```
    """
    num_pipelines, pipeline_id = 1, 0
    if is_multi_worker(strategy):
        resolver = strategy.cluster_resolver
        jobs = resolver.cluster_spec().as_dict()
        num_chiefs = len(jobs.get("chief", ()))
        num_pipelines = num_chiefs + len(jobs.get("worker", ()))
        pipeline_id = 0 if resolver.task_type == "chief" else num_chiefs + resolver.task_id
    return tf.distribute.InputContext(
        num_input_pipelines=num_pipelines,
        input_pipeline_id=pipeline_id,
        num_replicas_in_sync=strategy.num_replicas_in_sync,
    )


def is_tpu_strategy(strategy):
    return isinstance(strategy, tf.distribute.TPUStrategy)
