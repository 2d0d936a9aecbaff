"""How fast do the fusion classifiers train? examples/s and MFU, XLA on vs off.

For each fusion type (early, late, attention, gated) on the
`fusion_classifier_tiny` towers: training examples/s with `model.fit` from
one in-memory batch, and MFU (model FLOPs per step, counted by the TF
profiler as 3x the forward pass, over the matmul throughput measured in the
same run), with XLA on and off. The rounds interleave the configurations, so
each XLA on/off ratio is taken from runs made side by side.

    python benchmarks/fusion_speed.py

Prints a table and appends it, with the command, to benchmarks/README.md.
"""

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import forward_flops  # noqa: E402
from _common import matmul_flops_per_second  # noqa: E402
from _common import median_time  # noqa: E402
from _common import record  # noqa: E402

FUSIONS = ("early", "late", "attention", "gated")

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--preset", default="fusion_classifier_tiny")
PARSER.add_argument("--fusions", default=",".join(FUSIONS))
PARSER.add_argument("--batch-size", type=int, default=64)
PARSER.add_argument("--train-steps", type=int, default=20, help="steps per timed run")
PARSER.add_argument("--rounds", type=int, default=5, help="timed runs per configuration")
PARSER.add_argument("--no-record", action="store_true")


def batch(model, batch_size, seed=0):
    import numpy as np

    rng = np.random.RandomState(seed)
    x = {}
    for key, tensor in model.input.items():
        shape = (batch_size,) + tuple(tensor.shape[1:])
        if key.endswith("token_ids"):
            x[key] = rng.randint(4, 64, shape).astype("int32")
        elif key.endswith("padding_mask"):
            lengths = rng.randint(5, shape[1] + 1, (batch_size, 1))
            x[key] = (np.arange(shape[1])[None] < lengths).astype("int32")
        else:
            x[key] = rng.rand(*shape).astype("float32")
    y = rng.randint(0, model.num_classes, (batch_size,)).astype("int32")
    return x, y


def make_runner(args, fusion, jit):
    """A function running `train_steps` steps of a compiled model, and its FLOPs."""
    import keras
    import tensorflow as tf

    import mmzoo

    model = mmzoo.presets.build_from_preset(args.preset, fusion=fusion)
    x, y = batch(model, args.batch_size)
    flops = 3 * forward_flops(model, x)
    model.compile(
        optimizer="adamw",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )
    data = tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(2)

    def run():
        model.fit(data, steps_per_epoch=args.train_steps, epochs=1, verbose=0)

    run()  # build, trace and compile outside the timed runs
    inputs = ", ".join(f"{key} {tuple(value.shape[1:])}" for key, value in sorted(x.items()))
    return run, flops, model.count_params(), inputs


def main(args):
    peak = matmul_flops_per_second()
    fusions = args.fusions.split(",")
    runners = {}
    for fusion in fusions:
        for jit in (True, False):
            runners[fusion, jit] = make_runner(args, fusion, jit)
    seconds = {key: [] for key in runners}
    for _ in range(args.rounds):
        for key, (run, _, _, _) in runners.items():
            seconds[key].append(median_time(run, 1, warmup=0) / args.train_steps)
    rows = []
    for fusion in fusions:
        ratios = [off / on for on, off in zip(seconds[fusion, True], seconds[fusion, False])]
        for jit in (True, False):
            _, flops, params, _ = runners[fusion, jit]
            step = statistics.median(seconds[fusion, jit])
            rows.append(
                (fusion, "on" if jit else "off", f"{params:,}",
                 f"{args.batch_size / step:.0f}", f"{flops / 1e9:.3f}",
                 f"{100 * flops / step / peak:.1f}%",
                 f"{statistics.median(ratios):.2f}x" if jit else "")
            )
    header = ("fusion", "XLA", "parameters", "examples/s", "GFLOP/step", "MFU", "XLA speed-up")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    load_average = os.getloadavg()[0]
    body = (
        f"`{args.preset}` towers ({runners[fusions[0], True][3]}), batch {args.batch_size}, "
        f"median of {args.rounds} interleaved rounds of {args.train_steps} steps; the XLA "
        "speed-up is the median of per-round ratios. Measured fp32 matmul throughput "
        f"(2048x2048): {peak / 1e9:.0f} GFLOP/s; MFU is 3 x forward FLOPs per step over "
        f"it. 1-minute load average at the end: {load_average:.1f} ({os.cpu_count()} "
        "cores); compare rows of the same run.\n\n"
        + "\n".join(lines)
    )
    print(body)
    if not args.no_record:
        record("Fusion classifier speed", body)


if __name__ == "__main__":
    main(PARSER.parse_args())
