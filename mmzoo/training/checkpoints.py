"""Atomic `.keras` saving and the checkpoint directory of a training run.

Training checkpoints are `tf.train.Checkpoint`s managed by a
`tf.train.CheckpointManager` in `model_dir` (the manager writes its pointer file
atomically). Under a multi-worker strategy every worker must take part in a
save, but only the chief's files are kept: the other workers write into
`model_dir/workertemp_<task_id>`, which is deleted after each save (the layout
TensorFlow's own `PreemptionCheckpointHandler` uses).
"""

import os
import shutil
import tempfile

import tensorflow as tf

from mmzoo.training.strategies import is_chief


def save_model(model, filepath):
    """Saves `model` to a `.keras` file atomically.

    The file is written to a temporary name in the same directory, flushed to
    disk, then renamed over `filepath` with `os.replace`, so a reader (or a
    crash) sees either the previous file or the complete new one, never a
    partial zip.

    Args:
        model: a Keras model.
        filepath: str. Destination, ending in `.keras`. Missing parent
            directories are created.

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


def latest_checkpoint(model_dir):
    """Path prefix of the newest checkpoint in `model_dir`, or None."""
    if not model_dir or not tf.io.gfile.exists(model_dir):
        return None
    return tf.train.latest_checkpoint(model_dir)


class CheckpointSaver:
    """A `tf.train.CheckpointManager` over `model_dir`, multi-worker aware.

    Args:
        checkpoint: the `tf.train.Checkpoint` to save.
        model_dir: str. The run directory.
        strategy: the `tf.distribute.Strategy` in use.
        max_to_keep: int. Checkpoints kept in `model_dir`; older ones are
            deleted when a new one is written.
    """

    def __init__(self, checkpoint, model_dir, strategy, max_to_keep):
        self.chief = is_chief(strategy)
        if self.chief:
            self.directory = model_dir
        else:
            task_id = strategy.cluster_resolver.task_id
            self.directory = os.path.join(model_dir, f"workertemp_{task_id}")
            # A worker killed mid-save (or stopped by the preemption handler,
            # which does not clean up a manager it did not create) leaves one.
            self._remove_temporary()
        self.manager = tf.train.CheckpointManager(
            checkpoint, self.directory, max_to_keep=max_to_keep
        )

    def save(self, step):
        """Writes the checkpoint numbered `step`; returns its path (chief only)."""
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
