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
    """Appends a section (with the command line) to benchmarks/README.md."""
    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")
    script = os.path.relpath(sys.argv[0], os.path.dirname(os.path.dirname(readme)))
    command = " ".join(["python", script] + sys.argv[1:])
    section = (
        f"\n## {title} ({time.strftime('%Y-%m-%d')})\n\n"
        f"Command: `{command}`  \nMachine: {machine()}.\n\n{body}\n"
    )
    if not os.path.exists(readme):
        section = "# mmzoo benchmarks\n" + section
    with open(readme, "a", encoding="utf-8") as f:
        f.write(section)
