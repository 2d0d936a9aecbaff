"""How fast does the dual encoder train, and what do global negatives cost in memory?

Training: examples/s and MFU (model FLOPs per step, counted by the TF
profiler as 3x the forward pass, over the matmul throughput measured in the
same run) of dual encoder presets with `model.fit` and `CLIPLoss`, XLA on vs
off, on in-memory batches (no input pipeline).

Loss memory: the peak memory of one replica's CLIP loss and its gradient at
a large global batch, with the local logits `mmzoo.losses.CLIPLoss` computes
under a strategy (`local_batch x global_batch`: this replica's rows against
the gathered embeddings of all replicas) against global logits (`global_batch
x global_batch` on every replica: all rows against all). One replica's work
is run on its own, in a fresh process per variant (the gathered embeddings
are given as inputs), and the peak is the growth of the process's maximum
resident set size (`ru_maxrss`) during the loss and gradient computation.

    python benchmarks/dual_encoder_speed.py

Prints tables and appends them, with the command, to benchmarks/README.md.
"""

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import forward_flops  # noqa: E402
from _common import matmul_flops_per_second  # noqa: E402
from _common import median_time  # noqa: E402
from _common import record  # noqa: E402

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--presets", default="dual_encoder_tiny")
PARSER.add_argument("--batch-size", type=int, default=128)
PARSER.add_argument("--train-steps", type=int, default=10, help="steps per timed run")
PARSER.add_argument("--repeats", type=int, default=5)
PARSER.add_argument("--global-batch", type=int, default=8192, help="for the loss memory")
PARSER.add_argument("--replicas", type=int, default=8, help="for the loss memory")
PARSER.add_argument("--embedding-dim", type=int, default=512, help="for the loss memory")
PARSER.add_argument("--memory-repeats", type=int, default=3)
PARSER.add_argument("--parts", default="training,memory", help="comma-separated: training, memory")
PARSER.add_argument(
    "--peak-flops", type=float, default=460e9,
    help="hardware fp32 peak for the second MFU column (DESIGN.md: about 460 GFLOP/s here)",
)
PARSER.add_argument("--no-record", action="store_true")
# Internal: run one loss-memory measurement in this process.
PARSER.add_argument("--measure-loss-memory", choices=("local", "global"), help=argparse.SUPPRESS)


def batch(model, batch_size, seed=0):
    import numpy as np

    rng = np.random.RandomState(seed)
    x = {}
    for name, spec in model.input.items():
        shape = (batch_size,) + tuple(spec.shape[1:])
        if name.endswith("token_ids"):
            x[name] = rng.randint(4, 100, shape).astype("int32")
        elif name.endswith("padding_mask"):
            x[name] = np.ones(shape, "int32")
        else:
            x[name] = rng.rand(*shape).astype("float32")
    return x


def training_rows(args, preset):
    """(preset, XLA, parameters, seconds per step, FLOPs per step) per XLA setting."""
    import keras
    import tensorflow as tf

    import mmzoo

    rows = []
    for jit in (True, False):
        keras.backend.clear_session()
        model = mmzoo.presets.build_from_preset(preset)
        x = batch(model, args.batch_size)
        flops = 3 * forward_flops(model, x)
        model.compile(optimizer="adamw", loss=mmzoo.losses.CLIPLoss(), jit_compile=jit)
        data = tf.data.Dataset.from_tensors(x).repeat().prefetch(2)

        def run():
            model.fit(data, steps_per_epoch=args.train_steps, epochs=1, verbose=0)

        seconds = median_time(run, args.repeats) / args.train_steps
        rows.append((preset, "on" if jit else "off", model.count_params(), seconds, flops))
    return rows


def measure_loss_memory(args):
    """One replica's CLIP loss + gradient; prints the peak RSS growth in bytes."""
    import resource

    import numpy as np
    import tensorflow as tf

    from mmzoo.losses import CLIPLoss

    local = args.global_batch // args.replicas
    rows = local if args.measure_loss_memory == "local" else args.global_batch
    rng = np.random.RandomState(0)
    dim = args.embedding_dim
    # This replica's rows, and the gathered embeddings of all replicas.
    x = tf.Variable(rng.randn(rows, dim).astype("float32"))
    y = tf.Variable(rng.randn(rows, dim).astype("float32"))
    all_x = tf.constant(rng.randn(args.global_batch, dim).astype("float32"))
    all_y = tf.constant(rng.randn(args.global_batch, dim).astype("float32"))
    loss_fn = CLIPLoss()

    @tf.function
    def step():
        import mmzoo.losses.contrastive as contrastive

        with tf.GradientTape() as tape:
            if args.measure_loss_memory == "local":
                # What CLIPLoss computes on one of `replicas` replicas: its
                # rows against the gathered global batch.
                # The other replicas' rows come from the gather (CLIPLoss
                # gathers the image side, then the text side).
                original = contrastive.gather_from_replicas
                others = [all_x[rows:], all_y[rows:]]
                contrastive.gather_from_replicas = lambda e: (
                    tf.concat([e, others.pop(0)], axis=0), 0
                )
                try:
                    outputs = {
                        "image_embeddings": x, "text_embeddings": y,
                        "logit_scale": tf.fill((rows,), 10.0),
                    }
                    loss = loss_fn(None, outputs)
                finally:
                    contrastive.gather_from_replicas = original
            else:
                outputs = {
                    "image_embeddings": x, "text_embeddings": y,
                    "logit_scale": tf.fill((rows,), 10.0),
                }
                loss = loss_fn(None, outputs)  # all rows against all rows
        return loss, tape.gradient(loss, [x, y])

    step.get_concrete_function()  # trace before measuring
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    loss, grads = step()
    float(loss)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"peak_growth": after - before}))


def loss_memory_rows(args):
    import statistics

    local = args.global_batch // args.replicas
    rows = []
    for variant, shape in (("local", (local, args.global_batch)),
                           ("global", (args.global_batch, args.global_batch))):
        growths = []
        for _ in range(args.memory_repeats):
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--measure-loss-memory", variant,
                 "--global-batch", str(args.global_batch), "--replicas", str(args.replicas),
                 "--embedding-dim", str(args.embedding_dim)],
                capture_output=True, text=True, check=True,
            )
            growths.append(json.loads(out.stdout.strip().splitlines()[-1])["peak_growth"])
        logits_bytes = 4 * shape[0] * shape[1]
        rows.append(
            (f"{variant} logits", f"{shape[0]} x {shape[1]}",
             f"{logits_bytes / 2**20:.0f}", f"{statistics.median(growths) / 2**20:.0f}")
        )
    return rows


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def main(args):
    if args.measure_loss_memory:
        return measure_loss_memory(args)
    parts = args.parts.split(",")
    sections = []
    if "training" in parts:
        # Matmul throughput before and after the timed runs; the larger (the
        # less disturbed by other jobs) is the first MFU denominator.
        before = matmul_flops_per_second()
        raw = [r for p in args.presets.split(",") for r in training_rows(args, p)]
        after = matmul_flops_per_second()
        measured = max(before, after)
        train = [
            (preset, jit, f"{params:,}", f"{args.batch_size / seconds:.1f}",
             f"{flops / 1e9:.2f}", f"{100 * flops / seconds / measured:.1f}%",
             f"{100 * flops / seconds / args.peak_flops:.1f}%")
            for preset, jit, params, seconds, flops in raw
        ]
        train_table = table(
            ["preset", "XLA", "parameters", "examples/s", "GFLOP/step",
             "MFU (measured matmul)", f"MFU ({args.peak_flops / 1e9:.0f} GFLOP/s peak)"],
            train,
        )
        sections.append(
            f"Measured fp32 matmul throughput (2048x2048) before / after the runs: "
            f"{before / 1e9:.0f} / {after / 1e9:.0f} GFLOP/s. MFU is 3 x forward FLOPs per "
            f"step over the larger one, and over the hardware peak. `model.fit` with "
            f"`CLIPLoss` on one device, batch {args.batch_size}, in-memory data, median of "
            f"{args.repeats} runs of {args.train_steps} steps. 1-minute load average at the "
            f"end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores); compare rows of the "
            f"same run.\n\n{train_table}"
        )
    if "memory" in parts:
        memory_table = table(
            ["per replica", "logits shape", "one logit matrix (MiB)", "peak RSS growth (MiB)"],
            loss_memory_rows(args),
        )
        sections.append(
            f"CLIP loss and gradient of one replica at global batch {args.global_batch} over "
            f"{args.replicas} replicas, embeddings of {args.embedding_dim}, median of "
            f"{args.memory_repeats} fresh processes per variant:\n\n{memory_table}"
        )
    body = "\n\n".join(sections)
    print(body)
    if not args.no_record:
        record("Dual encoder speed", body)

if __name__ == "__main__":
    main(PARSER.parse_args())
