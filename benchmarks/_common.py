"""Shared helpers of the benchmark scripts: timing, FLOPs, recording."""

import os
import platform
import statistics
import sys
import time


def median_time(fn, repeats, warmup=1):
    """Median wall time of `fn()` over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_flops_per_second(size=2048, repeats=5, dtype="float32"):
    """Measured TensorFlow matmul throughput (FLOP/s) on this machine."""
    import tensorflow as tf

    a = tf.random.normal((size, size), dtype=dtype)
    b = tf.random.normal((size, size), dtype=dtype)
    matmul = tf.function(lambda: tf.matmul(a, b))
    seconds = median_time(lambda: matmul().numpy(), repeats)
    return 2 * size**3 / seconds


def forward_flops(model, inputs):
    """Float operations of one forward pass, counted by the TF profiler."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    specs = tf.nest.map_structure(lambda x: tf.TensorSpec(x.shape, x.dtype), inputs)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(specs)
    frozen = convert_variables_to_constants_v2(concrete)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    info = tf.compat.v1.profiler.profile(graph=frozen.graph, options=options)
    return info.total_float_ops


def add_budget_arguments(parser, minutes=10.0, what="training"):
    """Adds `--max-minutes` and `--clock` (see `TimeBudget`) to an argparse parser."""
    parser.add_argument(
        "--max-minutes", type=float, default=minutes, help=f"{what} budget (see --clock)"
    )
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall",
        help="what --max-minutes counts: wall-clock time, or this process's CPU time "
        "summed over all cores",
    )


class TimeBudget:
    """Keras callback stopping `fit` once `minutes` of training have passed.

    `clock="cpu"` counts this process's CPU time (all cores) instead of wall
    time, so the budget does not shrink when other jobs share the machine.
    The clock starts when the first step ends, so the one-time XLA compilation
    (minutes on a loaded 2-core machine) is not counted; it is reported
    separately as `compile_seconds`, and the training time after it as
    `train_seconds` (wall) and `cpu_seconds`. Every `eval_every` steps the
    callback prints `evaluate()`.

    Example:

    ```python
    budget = TimeBudget(10, clock="cpu")
    model.fit(train, steps_per_epoch=4000, callbacks=[budget.callback])
    print(budget.steps, budget.train_seconds, budget.cpu_seconds)
    ```
    """

    def __init__(self, minutes, clock="wall", eval_every=0, evaluate=None):
        import keras

        if clock not in ("wall", "cpu"):
            raise ValueError(f"`clock` must be 'wall' or 'cpu'. Received: clock={clock!r}")
        budget = self
        self.minutes, self.clock = minutes, clock

        class _Callback(keras.callbacks.Callback):
            def on_train_begin(cb, logs=None):
                budget.begin = time.perf_counter()
                budget.start = None
                budget.cpu_start = None
                budget.steps = 0
                budget.compile_seconds = 0.0

            def on_train_batch_end(cb, batch, logs=None):
                budget.steps += 1
                if budget.start is None:
                    budget.start = time.perf_counter()
                    budget.cpu_start = time.process_time()
                    budget.compile_seconds = budget.start - budget.begin
                if eval_every and budget.steps % eval_every == 0 and evaluate is not None:
                    print(f"step {budget.steps}: {evaluate()}", flush=True)
                if clock == "cpu":
                    spent = time.process_time() - budget.cpu_start
                else:
                    spent = time.perf_counter() - budget.start
                if spent > minutes * 60:
                    cb.model.stop_training = True

            def on_train_end(cb, logs=None):
                budget.train_seconds = time.perf_counter() - (budget.start or budget.begin)
                budget.cpu_seconds = time.process_time() - (budget.cpu_start or 0.0)

        self.callback = _Callback()

    def describe(self):
        """`"<wall> min wall / <cpu> CPU min after <compile> s of compilation"`."""
        return (
            f"{self.train_seconds / 60:.1f} min wall / {self.cpu_seconds / 60:.1f} CPU min "
            f"after {self.compile_seconds:.0f} s of compilation"
        )


def table(header, rows):
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def spread(values, scale=1.0, fmt="{:.1f}"):
    """`"median (min-max)"` of `values` times `scale`; the median alone for one value."""
    values = [v * scale for v in values]
    median = statistics.median(values)
    if len(values) == 1:
        return fmt.format(median)
    return f"{fmt.format(median)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def package_versions(names):
    """`"name version, ..."` of installed distributions ("not installed" if absent)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version

    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, no GPU"


def record(title, body):
    """Writes a section (with the command line) into benchmarks/README.md.

    One section per title: the sections of the same title from earlier runs
    go (git keeps them) and this one takes the place of the first of them; a
    new title is appended at the end. A script whose runs differ by their
    arguments and should all stay puts what differs in the title.
    """
    import re

    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")
    script = os.path.relpath(sys.argv[0], os.path.dirname(os.path.dirname(readme)))
    command = " ".join(["python", script] + sys.argv[1:])
    section = (
        f"## {title} ({time.strftime('%Y-%m-%d')})\n\n"
        f"Command: `{command}`  \nMachine: {machine()}.\n\n{body}\n\n"
    )
    text = "# mmzoo benchmarks\n\n"
    if os.path.exists(readme):
        with open(readme, encoding="utf-8") as f:
            text = f.read()
    earlier = re.compile(
        rf"^## {re.escape(title)} \(\d{{4}}-\d{{2}}-\d{{2}}\)\n.*?(?=^## |\Z)", re.M | re.S
    )
    matches = list(earlier.finditer(text))
    if matches:
        for match in reversed(matches[1:]):
            text = text[:match.start()] + text[match.end():]
        text = text[:matches[0].start()] + section + text[matches[0].end():]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    partial = readme + ".partial"
    with open(partial, "w", encoding="utf-8") as f:
        f.write(text.rstrip("\n") + "\n")
    os.replace(partial, readme)
