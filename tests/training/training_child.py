"""A tiny deterministic training run, importable by the tests and runnable as
a child process (the SIGKILL-resume and multi-worker tests start it).

    python training_child.py --model-dir DIR --steps 40 --out weights.npz
        [--multi-worker] [--step-delay 0.05] [--checkpoint-every 4]

With `--multi-worker` the process joins the cluster described by `TF_CONFIG`
(set by the parent) through `MultiWorkerMirroredStrategy`.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GLOBAL_BATCH = 8
NUM_EXAMPLES = 44  # not a multiple of the batch: epochs end mid-batch


def build_model(seed=1, dropout_rate=0.25):
    """Dense classifier with dropout, so the dropout seed state must resume too.

    Replicas draw their dropout masks from the same seed state, so only a model
    without dropout trains the same on N replicas as on one device.
    """
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), name="features")
    x = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    x = keras.layers.Dropout(dropout_rate, seed=seed, name="dropout")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, outputs, name="child_model")


def make_dataset(seed=2):
    """Shuffled (seeded, reshuffled each epoch), repeated, batched examples."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.RandomState(seed)
    x = rng.normal(size=(NUM_EXAMPLES, 6)).astype("float32")
    y = rng.randint(0, 3, size=(NUM_EXAMPLES,)).astype("int32")
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(NUM_EXAMPLES, seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(GLOBAL_BATCH, drop_remainder=True)
        .prefetch(2)
    )


def make_trainer(strategy, model_dir, dropout_rate=0.25):
    import keras

    from mmzoo.training import Trainer
    from mmzoo.training import warmup_cosine_decay

    with strategy.scope():
        model = build_model(dropout_rate=dropout_rate)
        optimizer = keras.optimizers.AdamW(
            warmup_cosine_decay(1e-2, total_steps=40, warmup_steps=5),
            weight_decay=0.01,
            global_clipnorm=1.0,
            use_ema=True,
            ema_momentum=0.9,
        )
    return Trainer(
        model,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer,
        strategy=strategy,
        model_dir=model_dir,
    )


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoint-every", type=int, default=4)
    parser.add_argument("--step-delay", type=float, default=0.0)
    parser.add_argument("--dropout-rate", type=float, default=0.25)
    parser.add_argument("--multi-worker", action="store_true")
    args = parser.parse_args(argv)

    import tensorflow as tf

    if args.multi_worker:
        # Before anything else touches TensorFlow's runtime.
        from mmzoo.training import get_strategy

        strategy = get_strategy(
            "multi_worker",
            communication_options=tf.distribute.experimental.CommunicationOptions(
                timeout_seconds=120
            ),
        )
    else:
        strategy = tf.distribute.get_strategy()
    tf.config.experimental.enable_op_determinism()

    import keras
    import numpy as np

    trainer = make_trainer(strategy, args.model_dir, args.dropout_rate)
    callbacks = []
    if args.step_delay:
        # Slow steps so the parent can kill the run at a step of its choice.
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_train_batch_end=lambda batch, logs: time.sleep(args.step_delay)
            )
        )
    rows = trainer.fit(
        make_dataset(),
        steps=args.steps,
        checkpoint_every=args.checkpoint_every,
        log_every=1,
        verbose=0,
        callbacks=callbacks,
    )
    # `variables`, unlike `weights`, includes the dropout seed state.
    weights = {f"w{i}": v.numpy() for i, v in enumerate(trainer.model.variables)}
    np.savez(
        args.out,
        losses=np.asarray([r["loss"] for r in rows]),
        steps=np.asarray([r["step"] for r in rows]),
        handler=np.asarray(type(trainer.preemption_handler).__name__),
        **weights,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
