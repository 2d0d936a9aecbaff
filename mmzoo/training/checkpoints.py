"""Atomic `.keras` saving and the checkpoint directory of a training run.

Training checkpoints are `tf.train.Checkpoint`s managed by a
`tf.train.CheckpointManager` in `model_dir` (the manager writes its pointer file
atomically). Under a multi-worker strategy every worker must take part in a
save, but only the chief's files are kept: the other workers write into
`model_dir/workertemp_<task_id>`, which is deleted after each save (the layout
TensorFlow's own `PreemptionCheckpointHandler` uses).

With per-worker input (`Trainer.fit` given a dataset function) each worker
also keeps the position of its own input pipeline, a `tf.train.Checkpoint`
of its `tf.data` iterator alone, in
`model_dir/input/pipeline-<id>-of-<count>/ckpt-<step>`: the model and
optimizer are not copied there. Every worker writes its input checkpoint
first and waits for all the others (a collective) before the chief writes
the model checkpoint of the same step, so a model checkpoint on disk means
that every worker's input checkpoint of that step is on disk too.

A save killed midway (SIGKILL, a full disk) leaves a `ckpt-N_temp/`
directory of partial shards beside the complete checkpoints; the chief
deletes such directories when it next starts, before training.
"""

import glob
import os
import shutil
import tempfile
import zipfile

import tensorflow as tf

from mmzoo.training import writes
from mmzoo.training.strategies import is_chief


def _is_keras_archive(path):
    try:
        with zipfile.ZipFile(path) as archive:
            return "config.json" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def save_model(model, filepath, overwrite=False):
    """Saves `model` to a `.keras` file atomically.

    The file is written to a temporary name in the same directory, flushed to
    disk, then renamed over `filepath` with `os.replace`, so a reader (or a
    crash) sees either the previous file or the complete new one, never a
    partial zip. It gets the permissions of the process umask.

    An existing `filepath` is replaced when it is a Keras archive (a zip
    holding `config.json`, as every `.keras` file does); anything else there
    is refused unless `overwrite=True`, and a directory always is.

    Args:
        model: a Keras model.
        filepath: str. Destination, ending in `.keras`. Missing parent
            directories are created.
        overwrite: bool. Replace a file at `filepath` that is not a `.keras`
            archive.

    Returns:
        `filepath`.

    Example:

    ```python
    mmzoo.training.save_model(model, "runs/captioner/final.keras")
    restored = keras.saving.load_model("runs/captioner/final.keras")
    ```
    """
    filepath = os.fspath(filepath)
    if not filepath.endswith(".keras"):
        raise ValueError(
            f"`filepath` must end in `.keras`. Received: filepath={filepath!r}"
        )
    if os.path.isdir(filepath):
        raise ValueError(
            f"`filepath` is a directory; a `.keras` file is never written over one. "
            f"Received: filepath={filepath!r}"
        )
    if os.path.lexists(filepath) and not overwrite and not _is_keras_archive(filepath):
        raise ValueError(
            "`filepath` exists and is not a `.keras` archive; choose another path or pass "
            f"overwrite=True to replace it. Received: filepath={filepath!r}"
        )
    directory = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(filepath)}.", suffix=".tmp.keras", dir=directory
    )
    os.close(fd)
    try:
        model.save(tmp, overwrite=True)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        writes.apply_umask(tmp)  # mkstemp made it 0600
        os.replace(tmp, filepath)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_directory(directory)
    return filepath


def _fsync_directory(directory):
    # Makes the rename itself durable; not supported everywhere (e.g. Windows).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_partial_checkpoints(model_dir):
    """Deletes the `ckpt-N_temp/` directories of saves that never finished.

    TensorFlow writes a checkpoint's shards into `<prefix>_temp/` and merges
    them into the final files at the end; a killed save leaves the directory.

    Returns:
        The paths removed.
    """
    removed = []
    for path in glob.glob(os.path.join(glob.escape(model_dir), "ckpt-*_temp")):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def latest_checkpoint(model_dir):
    """Path prefix of the newest checkpoint in `model_dir`, or None."""
    if not model_dir or not tf.io.gfile.exists(model_dir):
        return None
    return tf.train.latest_checkpoint(model_dir)


def input_directory(model_dir, context):
    """Where one input pipeline's iterator checkpoints go (see the module docstring)."""
    return os.path.join(
        model_dir,
        "input",
        f"pipeline-{context.input_pipeline_id:05d}-of-{context.num_input_pipelines:05d}",
    )


def _barrier(strategy):
    """A function that returns once every replica of `strategy` has called it."""

    def replica_fn():
        context = tf.distribute.get_replica_context()
        return context.all_reduce(tf.distribute.ReduceOp.SUM, tf.ones([]))

    return tf.function(lambda: strategy.run(replica_fn))


class CheckpointSaver:
    """A `tf.train.CheckpointManager` over `model_dir`, multi-worker aware.

    Args:
        checkpoint: the `tf.train.Checkpoint` to save.
        model_dir: str. The run directory.
        strategy: the `tf.distribute.Strategy` in use.
        max_to_keep: int. Checkpoints kept in `model_dir`; older ones are
            deleted when a new one is written.
        input_checkpoint: `tf.train.Checkpoint` of this worker's input
            iterator, saved into `input_directory` before `checkpoint`; or
            None when the iterator is part of `checkpoint`.
        input_directory: str. Where `input_checkpoint` goes.
    """

    def __init__(self, checkpoint, model_dir, strategy, max_to_keep, input_checkpoint=None,
                 input_directory=None):
        self.chief = is_chief(strategy)
        if self.chief:
            self.directory = model_dir
            remove_partial_checkpoints(model_dir)
        else:
            task_id = strategy.cluster_resolver.task_id
            self.directory = os.path.join(model_dir, f"workertemp_{task_id}")
            # A worker killed mid-save (or stopped by the preemption handler,
            # which does not clean up a manager it did not create) leaves one.
            self._remove_temporary()
        self.manager = tf.train.CheckpointManager(
            checkpoint, self.directory, max_to_keep=max_to_keep
        )
        self.input_manager = None
        if input_checkpoint is not None:
            remove_partial_checkpoints(input_directory)
            self.input_manager = tf.train.CheckpointManager(
                input_checkpoint, input_directory, max_to_keep=max_to_keep
            )
            self._barrier = _barrier(strategy)

    def save(self, step):
        """Writes the checkpoint numbered `step`; returns its path (chief only)."""
        if self.input_manager is not None:
            self.input_manager.save(checkpoint_number=step)
            # The chief's checkpoint names the step only once every worker's
            # input position of that step is on disk.
            self._barrier()
        path = self.manager.save(checkpoint_number=step)
        if not self.chief:
            self._remove_temporary()
            return None
        return path

    def _remove_temporary(self):
        if not self.chief and os.path.exists(self.directory):
            shutil.rmtree(self.directory, ignore_errors=True)

    def close(self):
        self._remove_temporary()
