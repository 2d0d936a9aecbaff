"""What `Trainer.fit` reports: a progress bar, TensorBoard scalars and a JSONL log.

`model_dir/metrics.jsonl` holds one JSON object per logged step, appended and
flushed line by line, so a killed run leaves a valid prefix (at worst a torn
last line, which `read_metrics` skips). When training resumes from a checkpoint
at step k, the lines after step k are dropped first (the file is rewritten to a
temporary name and renamed), so the log never holds two values for one step.
The first row's examples per second include tracing and XLA compilation.

The progress bar counts global steps (a resumed run's bar starts at the
resumed step) and appears once the first step, which traces and compiles
the step function, is done: until then a line says that it is compiling,
and the time it took is printed, so the estimate of the time left is never
taken from the compilation.
"""

import json
import math
import os
import tempfile
import time

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from mmzoo.training import writes

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def _scalar_metadata():
    # What `tf.summary.scalar` writes, built from TensorFlow's own protos:
    # `tf.summary.scalar` itself lives in the tensorboard package, which is not
    # a dependency of TensorFlow 2.21 (TBNotInstalledError without it).
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR,
    )


class _Progbar(keras.utils.Progbar):
    """`keras.utils.Progbar` whose time estimate starts after a given step.

    Keras's own estimate divides the time since the bar was made by the
    current value, which is wrong when the bar starts at a resumed step.
    """

    def __init__(self, target, base_step, **kwargs):
        super().__init__(target, **kwargs)
        self._base_step = base_step
        self._base_time = time.time()  # Keras's Progbar clock

    def _estimate_step_duration(self, current, now):
        if current <= self._base_step:
            return 0
        return (now - self._base_time) / (current - self._base_step)


def write_scalar(name, value, step):
    """`tf.summary.scalar` without the tensorboard package (same event data)."""
    return tf.summary.write(
        name, tf.cast(value, tf.float32), step=step, metadata=_scalar_metadata()
    )


def read_metrics(model_dir):
    """The rows of `model_dir/metrics.jsonl` as a list of dicts.

    A torn last line (a process killed mid-write) is skipped.
    """
    path = os.path.join(model_dir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _truncate_metrics(path, last_step):
    """Drops the rows after `last_step` (and any torn line), atomically."""
    if not os.path.exists(path):
        return
    rows = read_metrics(os.path.dirname(path))
    kept = [r for r in rows if r.get("step", 0) <= last_step]
    with open(path) as f:
        if sum(1 for _ in f) == len(kept):
            return
    fd, tmp = tempfile.mkstemp(prefix=f".{METRICS_FILE}.", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        writes.apply_umask(tmp)  # mkstemp made it 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class TrainingLog:
    """Progress bar, TensorBoard scalars and JSONL rows for one `fit` call.

    Args:
        model_dir: str or None. Where `metrics.jsonl` and `tensorboard/` go;
            None writes neither.
        initial_step: int. The global step training starts from.
        target_step: int. The global step training stops at.
        examples_per_step: int. Examples consumed by one optimizer step (the
            global batch size times the accumulation steps).
        verbose: int. 1 shows a progress bar, 0 nothing.
        enabled: bool. False on non-chief workers: nothing is shown or written.
    """

    def __init__(
        self, model_dir, initial_step, target_step, examples_per_step, verbose, enabled
    ):
        self.examples_per_step = examples_per_step
        self.initial_step = initial_step
        self.enabled = enabled
        self._metrics_file = None
        self._writer = None
        self._progbar = None
        self._window_start = time.perf_counter()
        self._window_steps = 0
        self._window_loss = 0.0
        self._first_step_end = None
        self._verbose = verbose
        self._target_step = target_step
        self._begin = None
        if not enabled:
            return
        if model_dir:
            os.makedirs(model_dir, exist_ok=True)
            path = os.path.join(model_dir, METRICS_FILE)
            _truncate_metrics(path, initial_step)
            # Line buffered: every row reaches the OS when it is written.
            self._metrics_file = open(path, "a", buffering=1)
            self._writer = tf.summary.create_file_writer(
                os.path.join(model_dir, TENSORBOARD_DIR)
            )

    def begin(self):
        """Called before the first step: says that the step is being compiled."""
        self._begin = time.perf_counter()
        if self.enabled and self._verbose and self.initial_step < self._target_step:
            resumed = f" (resumed at step {self.initial_step})" if self.initial_step else ""
            print(
                f"Step {self.initial_step + 1}/{self._target_step}{resumed}: tracing and "
                "compiling the training step...",
                flush=True,
            )

    def step_end(self, step, loss):
        """Called after every step with its loss (a Python float)."""
        now = time.perf_counter()
        self._window_steps += 1
        self._window_loss += loss
        if not (self.enabled and self._verbose):
            return
        if self._first_step_end is None:
            self._first_step_end = now
            if self._begin is not None:
                print(f"Compiled and ran the first step in {now - self._begin:.1f} s.", flush=True)
            self._progbar = _Progbar(
                self._target_step, base_step=step,
                stateful_metrics=["loss", "examples/s"], unit_name="step",
            )
        values = [("loss", loss)]
        # Throughput since the end of the first step, which compiles.
        if step - self.initial_step > 1:
            rate = (step - self.initial_step - 1) * self.examples_per_step / (
                now - self._first_step_end
            )
            values.append(("examples/s", rate))
        self._progbar.update(step, values=values)

    def log(self, step, **scalars):
        """Writes one row: `step`, the mean loss since the last row, the
        examples per second over the same window, and `scalars`.

        Returns:
            The row (a dict), also on non-chief workers.
        """
        now = time.perf_counter()
        seconds = max(now - self._window_start, 1e-9)
        steps = max(self._window_steps, 1)
        row = {
            "step": int(step),
            "loss": self._window_loss / steps,
            **{k: float(v) for k, v in scalars.items()},
            "examples_per_second": steps * self.examples_per_step / seconds,
            "time": time.time(),
        }
        self._window_start, self._window_steps, self._window_loss = now, 0, 0.0
        if not self.enabled:
            return row
        if self._metrics_file is not None:
            finite = {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v))
                      for k, v in row.items()}
            self._metrics_file.write(json.dumps(finite) + "\n")
        if self._writer is not None:
            with self._writer.as_default():
                for name, value in row.items():
                    if name not in ("step", "time"):
                        write_scalar(name, value, step=int(step))
        return row

    def flush(self):
        if self._writer is not None:
            self._writer.flush()

    def close(self):
        if self._metrics_file is not None:
            self._metrics_file.close()
            self._metrics_file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
