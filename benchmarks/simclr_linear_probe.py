"""Does SimCLR pretraining make the tiny image tower's features linearly useful?

Trains the `dual_encoder_simclr_tiny` preset (one tiny ViT shared by both
views, MLP projection, NT-Xent at temperature 0.1) on `shapes_classification`
images through `mmzoo.data.two_view_pipeline` (random resized crop, flip,
colour jitter, grayscale, blur) within a CPU-time budget, then compares
linear probes (`mmzoo.evaluation.linear_probe`) on the frozen tower's pooled
features against the same tower randomly initialised (its weights before
training) and against raw pixels.

Probe tasks are the image-only questions of `shapes_classification`: "does
the image hold a <shape>?" for the 4 shapes and "a <colour> shape?" for the
6 colours, each a binary logistic regression on 2,000 training images scored
on 1,000 test images; the table gives the mean accuracy over the shape tasks
and over the colour tasks, and the majority-class accuracy for reference.

    python benchmarks/simclr_linear_probe.py --max-minutes 10

Prints a table and appends it to benchmarks/README.md (unless --no-record).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import TimeBudget  # noqa: E402
from _common import add_budget_arguments  # noqa: E402
from _common import record  # noqa: E402

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--train-examples", type=int, default=20000)
PARSER.add_argument("--batch-size", type=int, default=128)
PARSER.add_argument("--learning-rate", type=float, default=1e-3)
PARSER.add_argument("--max-steps", type=int, default=20000)
add_budget_arguments(PARSER, 10.0)
PARSER.add_argument("--probe-train", type=int, default=2000)
PARSER.add_argument("--probe-test", type=int, default=1000)
PARSER.add_argument("--seed", type=int, default=0)
PARSER.add_argument("--no-record", action="store_true")


def probe_tasks(scene):
    """`{name: int labels}` for the image-only questions of the dataset."""
    import numpy as np

    from mmzoo import data

    tasks = {}
    for index, shape in enumerate(data.SHAPES):
        tasks[f"shape: {shape}"] = (scene["shapes"] == index).any(axis=1).astype(np.int32)
    for index, color in enumerate(data.COLORS):
        tasks[f"colour: {color}"] = (scene["colors"] == index).any(axis=1).astype(np.int32)
    return tasks


def probe_scores(train_features, test_features, train_tasks, test_tasks):
    import numpy as np

    from mmzoo.evaluation import linear_probe

    scores = {}
    for name in train_tasks:
        scores[name] = linear_probe(
            train_features, train_tasks[name], test_features, test_tasks[name]
        )["accuracy"]
    mean = lambda kind: float(np.mean([v for k, v in scores.items() if k.startswith(kind)]))  # noqa: E731
    return mean("shape"), mean("colour")


def main(args):
    import keras
    import numpy as np

    import mmzoo
    from mmzoo import data

    keras.utils.set_random_seed(args.seed)
    examples = data.load_synthetic(
        "shapes_classification", "train", num_examples=args.train_examples, seed=args.seed,
        image_size=32,
    )
    model = mmzoo.presets.build_from_preset("dual_encoder_simclr_tiny")
    initial_weights = model.encoder.get_weights()
    views = data.two_view_pipeline(examples, batch_size=args.batch_size, seed=args.seed)
    model.compile(
        optimizer=keras.optimizers.AdamW(args.learning_rate, weight_decay=0.05),
        loss=mmzoo.losses.NTXentLoss(), jit_compile=True,
    )
    budget = TimeBudget(args.max_minutes, args.clock)
    history = model.fit(views, steps_per_epoch=args.max_steps, epochs=1, verbose=2,
                        callbacks=[budget.callback])
    steps_done = int(model.optimizer.iterations.numpy())

    probe_train = data.generate_shapes_classification(
        args.probe_train, split="train", seed=args.seed + 1, image_size=32
    )
    probe_test = data.generate_shapes_classification(
        args.probe_test, split="test", seed=args.seed, image_size=32
    )
    train_tasks, test_tasks = probe_tasks(probe_train["scene"]), probe_tasks(probe_test["scene"])

    def pooled(images):
        return model.encoder.predict(images, batch_size=250, verbose=0)["pooled_output"]

    rows = []
    pretrained = probe_scores(
        pooled(probe_train["images"]), pooled(probe_test["images"]), train_tasks, test_tasks
    )
    trained_weights = model.encoder.get_weights()
    model.encoder.set_weights(initial_weights)
    random_init = probe_scores(
        pooled(probe_train["images"]), pooled(probe_test["images"]), train_tasks, test_tasks
    )
    model.encoder.set_weights(trained_weights)
    pixels = probe_scores(
        probe_train["images"].reshape(args.probe_train, -1),
        probe_test["images"].reshape(args.probe_test, -1), train_tasks, test_tasks,
    )
    majority = tuple(
        float(np.mean([max(np.mean(test_tasks[k]), 1 - np.mean(test_tasks[k]))
                       for k in test_tasks if k.startswith(kind)]))
        for kind in ("shape", "colour")
    )
    dim = model.encoder.output["pooled_output"].shape[-1]
    for name, (shape, colour) in (
        (f"SimCLR-pretrained tower, pooled ({dim})", pretrained),
        (f"same tower at its random initialisation ({dim})", random_init),
        ("raw pixels (3,072)", pixels),
        ("majority class", majority),
    ):
        rows.append(f"| {name} | {shape:.3f} | {colour:.3f} |")
    table = (
        "| features | mean accuracy, 4 shape tasks | mean accuracy, 6 colour tasks |\n"
        "| --- | --- | --- |\n" + "\n".join(rows)
    )
    body = (
        f"`dual_encoder_simclr_tiny` trained {steps_done} steps x {args.batch_size} on "
        f"{args.train_examples:,} `shapes_classification` images (32x32, AdamW "
        f"{args.learning_rate}, `two_view_pipeline` defaults, seed {args.seed}); training "
        f"{budget.describe()}; final NT-Xent loss {history.history['loss'][-1]:.3f}. Linear "
        f"probes on {args.probe_train:,} / {args.probe_test:,} images. 1-minute load "
        f"average at the end: {os.getloadavg()[0]:.1f}.\n\n{table}"
    )
    print(body)
    if not args.no_record:
        record("SimCLR linear probe", body)


if __name__ == "__main__":
    main(PARSER.parse_args())
