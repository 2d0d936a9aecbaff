"""What does mmzoo.training.Trainer cost over model.fit, and what do XLA and
MirroredStrategy do to it?

Trains the same model (a preset image encoder plus a classification head) on
the same in-memory data and measures training examples/s of:

* `model.fit` and `Trainer.fit` on one device, XLA on and off;
* `Trainer.fit` under MirroredStrategy on two logical CPU devices (the CPU
  split in two, as the tests do), XLA on and off;
* the cost of reproducibility: `mmzoo train image_captioning` (the recipe:
  synthetic data through `captioning_pipeline`, the tiny captioner, XLA) with
  `deterministic=True` (TensorFlow's op determinism, the default) and False.
  Op determinism is process-wide, so each run is a child process; rounds
  alternate the two, and the rate is the median examples/s of the logged
  windows after the first (which holds the compilation).

Every configuration is compiled and warmed up first; then each timed round
runs every configuration once (`--steps` optimizer steps each, in turn), so
slow phases of a shared machine hit all of them alike. The table gives the
median examples/s and the median of the ratios taken within a round.

    python benchmarks/trainer_overhead.py

Prints the table and appends it, with the command, to benchmarks/README.md.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--preset", default="vit_image_encoder_tiny")
PARSER.add_argument("--num-classes", type=int, default=10)
PARSER.add_argument("--batch-size", type=int, default=32, help="global batch")
PARSER.add_argument("--steps", type=int, default=40, help="optimizer steps per timed run")
PARSER.add_argument("--repeats", type=int, default=7, help="timed rounds")
PARSER.add_argument("--no-record", action="store_true", help="do not append to README.md")
PARSER.add_argument("--determinism-steps", type=int, default=300,
                    help="recipe steps per determinism run")
PARSER.add_argument("--determinism-rounds", type=int, default=3)
PARSER.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)

ONE_DEVICE, MIRRORED = "one device", "mirrored, 2 logical CPUs"


def split_cpu():
    """Two logical CPU devices, before TensorFlow initialises its devices."""
    import tensorflow as tf

    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )


def build_model(preset, num_classes):
    import keras

    from mmzoo.presets import build_from_preset

    keras.utils.set_random_seed(0)
    encoder = build_from_preset(preset)
    images = keras.Input(encoder.input.shape[1:], name="images")
    pooled = encoder(images)["pooled_output"]
    logits = keras.layers.Dense(num_classes, name="head")(pooled)
    return keras.Model(images, logits, name=f"{preset}_classifier")


def make_dataset(image_shape, num_classes, batch_size):
    import numpy as np
    import tensorflow as tf

    rng = np.random.RandomState(0)
    images = rng.rand(8 * batch_size, *image_shape).astype("float32")
    labels = rng.randint(0, num_classes, size=(8 * batch_size,)).astype("int32")
    return (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .prefetch(2)
    )


class Runner:
    """One configuration: builds, warms up, then `run()` trains `steps` steps."""

    def __init__(self, args, api, placement, jit_compile, dataset):
        import keras
        import tensorflow as tf

        from mmzoo.training import Trainer
        from mmzoo.training import get_strategy

        self.name = f"{api}, {placement}, XLA {'on' if jit_compile else 'off'}"
        self.api, self.placement, self.jit_compile = api, placement, jit_compile
        self.steps, self.dataset = args.steps, dataset
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        strategy = tf.distribute.get_strategy()
        if placement == MIRRORED:
            strategy = get_strategy("mirrored")
        with strategy.scope():
            model = build_model(args.preset, args.num_classes)
            optimizer = keras.optimizers.AdamW(1e-3)
        if api == "model.fit":
            model.compile(optimizer, loss, jit_compile=jit_compile)
            self.model = model
        else:
            self.trainer = Trainer(model, loss, optimizer, strategy=strategy,
                                   jit_compile=jit_compile)
        self.run(steps=2)  # trace and compile

    def run(self, steps=None):
        steps = steps or self.steps
        start = time.perf_counter()
        if self.api == "model.fit":
            self.model.fit(self.dataset, steps_per_epoch=steps, epochs=1, verbose=0)
        else:
            self.trainer.fit(self.dataset, steps=self.trainer.step + steps,
                             log_every=10**9, verbose=0)
        return time.perf_counter() - start


def determinism_child(args):
    """One recipe run (`--child on|off`): prints its steady examples/s as JSON."""
    import json
    import tempfile

    from mmzoo import recipes
    from mmzoo import training

    with tempfile.TemporaryDirectory() as model_dir:
        recipes.train_image_captioning(
            model_dir=model_dir, steps=args.determinism_steps, num_examples=4000,
            batch_size=64, checkpoint_every=10**6, verbose=0,
            deterministic=args.child == "on",
        )
        rows = training.read_metrics(model_dir)
    print(json.dumps({"rate": statistics.median(r["examples_per_second"] for r in rows[1:])}))


def determinism_rates(args):
    """Per round, the steady examples/s with op determinism off and on."""
    import json
    import subprocess
    import sys

    rates = {"off": [], "on": []}
    for _ in range(args.determinism_rounds):
        for mode in ("off", "on"):
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child", mode,
                 "--determinism-steps", str(args.determinism_steps)],
                check=True, capture_output=True, text=True,
            ).stdout
            rates[mode].append(json.loads(out.strip().splitlines()[-1])["rate"])
    return rates


def main():
    args = PARSER.parse_args()
    if args.child:
        return determinism_child(args)
    split_cpu()
    import tensorflow as tf

    from mmzoo.presets import get_preset_config

    image_shape = tuple(get_preset_config(args.preset)["image_shape"])
    dataset = make_dataset(image_shape, args.num_classes, args.batch_size)
    configs = [
        ("model.fit", ONE_DEVICE, True),
        ("Trainer", ONE_DEVICE, True),
        ("model.fit", ONE_DEVICE, False),
        ("Trainer", ONE_DEVICE, False),
        ("Trainer", MIRRORED, True),
        ("Trainer", MIRRORED, False),
    ]
    load_before = os.getloadavg()
    runners = [Runner(args, *config, dataset) for config in configs]
    rates = {r.name: [] for r in runners}
    for _ in range(args.repeats):
        for runner in runners:
            rates[runner.name].append(args.steps * args.batch_size / runner.run())
    determinism = determinism_rates(args)
    load_after = os.getloadavg()

    def name(api, placement, jit):
        return f"{api}, {placement}, XLA {'on' if jit else 'off'}"

    def paired(numerator, denominator):
        return statistics.median(a / b for a, b in zip(rates[numerator], rates[denominator]))

    ratios = [
        ("Trainer / model.fit, one device, XLA on",
         paired(name("Trainer", ONE_DEVICE, True), name("model.fit", ONE_DEVICE, True))),
        ("Trainer / model.fit, one device, XLA off",
         paired(name("Trainer", ONE_DEVICE, False), name("model.fit", ONE_DEVICE, False))),
        ("Trainer mirrored / one device, XLA on",
         paired(name("Trainer", MIRRORED, True), name("Trainer", ONE_DEVICE, True))),
        ("Trainer mirrored / one device, XLA off",
         paired(name("Trainer", MIRRORED, False), name("Trainer", ONE_DEVICE, False))),
        ("Trainer XLA on / off, one device",
         paired(name("Trainer", ONE_DEVICE, True), name("Trainer", ONE_DEVICE, False))),
        ("Trainer XLA on / off, mirrored",
         paired(name("Trainer", MIRRORED, True), name("Trainer", MIRRORED, False))),
    ]

    lines = [
        f"{args.preset} + Dense({args.num_classes}) head, AdamW, global batch "
        f"{args.batch_size}, {args.steps} steps per timed run, {args.repeats} rounds; "
        f"TensorFlow {tf.__version__}.",
        "",
        "| configuration | examples/s (median) | min - max |",
        "|---|---:|---:|",
    ]
    for runner in runners:
        values = rates[runner.name]
        lines.append(f"| {runner.name} | {statistics.median(values):.0f} | "
                     f"{min(values):.0f} - {max(values):.0f} |")
    lines += ["", "| ratio (median of per-round ratios) | value |", "|---|---:|"]
    lines += [f"| {label} | {value:.3f} |" for label, value in ratios]
    off, on = determinism["off"], determinism["on"]
    lines += [
        "",
        f"Reproducibility: `train_image_captioning` (image_captioning_tiny, batch 64, "
        f"{args.determinism_steps} steps, XLA on), {args.determinism_rounds} rounds, each "
        "mode a fresh process.",
        "",
        "| deterministic | examples/s (median) | min - max |",
        "|---|---:|---:|",
        f"| False | {statistics.median(off):.0f} | {min(off):.0f} - {max(off):.0f} |",
        f"| True (default) | {statistics.median(on):.0f} | {min(on):.0f} - {max(on):.0f} |",
        "",
        f"deterministic True / False (median of per-round ratios): "
        f"{statistics.median(a / b for a, b in zip(on, off)):.3f}",
    ]
    lines += [
        "",
        f"Load average (1 min) {load_before[0]:.1f} before the runs, {load_after[0]:.1f} "
        "after: the benchmark itself keeps about 2 threads busy, so values well above 2 "
        "mean other jobs shared the machine.",
        "The two logical devices share the same two cores, so the mirrored rows "
        "measure the cost of distribution (splitting the batch, the all-reduce, "
        "per-replica kernels), not a speed-up.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_record:
        from _common import record

        record("Trainer overhead (`benchmarks/trainer_overhead.py`)", body)


if __name__ == "__main__":
    main()
