"""A tiny deterministic training run, importable by the tests and runnable as
a child process (the SIGKILL-resume and multi-worker tests start it).

    python training_child.py --model-dir DIR --steps 40 --out weights.npz
        [--multi-worker] [--step-delay 0.05] [--checkpoint-every 4]
        [--contrastive --accumulation-steps 2] [--momentum] [--per-worker]

With `--multi-worker` the process joins the cluster described by `TF_CONFIG`
(set by the parent) through `MultiWorkerMirroredStrategy`. With
`--contrastive` the run trains a two-tower model with `CLIPLoss` (global
negatives across workers) instead of the classifier; with `--momentum`, a
small `DualEncoder` with a momentum encoder and a feature queue, dropout,
and the classifier's optimizer (moving averages, schedule), so that every
kind of state a run holds must resume. With `--per-worker` the classifier's
examples come from a dataset function (`make_dataset_fn`): each worker reads
and decodes only its share, and the indices it decoded go into `--out`.
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


def make_dataset_fn(decoded, seed=2):
    """`make_dataset`'s examples, each worker taking every other one of the stream.

    The examples are shuffled and repeated as in `make_dataset`, then each
    input pipeline keeps its share of the stream *before* decoding, so a
    worker decodes only the examples it trains on. The index of each example
    decoded is appended to `decoded`. Worker k's batch j holds the stream's
    examples 8j + k, 8j + k + 2, ...: with two workers, the rows of
    `make_dataset`'s batch j.
    """
    import numpy as np
    import tensorflow as tf

    rng = np.random.RandomState(seed)
    x = rng.normal(size=(NUM_EXAMPLES, 6)).astype("float32")
    y = rng.randint(0, 3, size=(NUM_EXAMPLES,)).astype("int32")

    def record(index):
        decoded.append(int(index))
        return index

    def decode(index):
        index = tf.ensure_shape(
            tf.numpy_function(record, [index], tf.int64, stateful=True), []
        )
        return tf.gather(x, index), tf.gather(y, index)

    def dataset_fn(context):
        dataset = (
            tf.data.Dataset.range(NUM_EXAMPLES)
            .shuffle(NUM_EXAMPLES, seed=seed, reshuffle_each_iteration=True)
            .repeat()
            .shard(context.num_input_pipelines, context.input_pipeline_id)
            .map(decode)
            .batch(context.get_per_replica_batch_size(GLOBAL_BATCH), drop_remainder=True)
        )
        # No read-ahead: `decoded` then holds exactly what the steps took.
        options = tf.data.Options()
        options.experimental_optimization.inject_prefetch = False
        return dataset.with_options(options)

    return dataset_fn


def build_contrastive_model(seed=1):
    """Two Dense towers and a fixed logit scale: the outputs `CLIPLoss` reads."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = {name: keras.Input((6,), name=name) for name in ("images", "texts")}
    outputs = {
        "image_embeddings": keras.layers.Dense(8, name="image_tower")(inputs["images"]),
        "text_embeddings": keras.layers.Dense(8, name="text_tower")(inputs["texts"]),
        # The same scale for every row (one copy per example, as a DualEncoder's).
        "logit_scale": keras.layers.Dense(
            1, trainable=False, kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(5.0), name="logit_scale",
        )(inputs["images"]),
    }
    return keras.Model(inputs, outputs, name="contrastive_child_model")


def build_momentum_model(seed=1, dropout_rate=0.25):
    """A `DualEncoder` of two small towers, with momentum 0.9 and a queue of 16."""
    import keras

    from mmzoo.models import build_dual_encoder

    keras.utils.set_random_seed(seed)
    pixels = keras.Input((4, 4, 3), name="images")
    image_features = keras.layers.Dense(8, name="image_dense")(keras.layers.Flatten()(pixels))
    image_tower = keras.Model(pixels, image_features, name="image_tower")
    text_inputs = {
        "token_ids": keras.Input((6,), dtype="int32", name="token_ids"),
        "padding_mask": keras.Input((6,), dtype="bool", name="padding_mask"),
    }
    tokens = keras.layers.Embedding(20, 8, name="token_embedding")(text_inputs["token_ids"])
    text_features = keras.layers.GlobalAveragePooling1D(name="pool")(
        tokens, mask=text_inputs["padding_mask"]
    )
    text_tower = keras.Model(text_inputs, text_features, name="text_tower")
    return build_dual_encoder(
        image_tower, text_tower, projection_dim=8, projection_intermediate_dim=16,
        dropout_rate=dropout_rate, momentum=0.9, queue_size=2 * GLOBAL_BATCH,
    )


def make_momentum_dataset(seed=2):
    """Shuffled (seeded, reshuffled each epoch), repeated image-text pairs."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.RandomState(seed)
    lengths = rng.randint(1, 7, size=(NUM_EXAMPLES, 1))
    padding_mask = np.arange(6)[None, :] < lengths
    pairs = {
        "images": rng.uniform(size=(NUM_EXAMPLES, 4, 4, 3)).astype("float32"),
        "token_ids": np.where(padding_mask, rng.randint(1, 20, size=(NUM_EXAMPLES, 6)), 0)
        .astype("int32"),
        "padding_mask": padding_mask,
    }
    return (
        tf.data.Dataset.from_tensor_slices(pairs)
        .shuffle(NUM_EXAMPLES, seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(GLOBAL_BATCH, drop_remainder=True)
        .prefetch(2)
    )


def make_contrastive_dataset(batch_size, seed=2):
    """Shuffled, repeated pairs; batches of `batch_size` from the same stream."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.RandomState(seed)
    images = rng.normal(size=(NUM_EXAMPLES, 6)).astype("float32")
    texts = (images + rng.normal(size=(NUM_EXAMPLES, 6))).astype("float32")
    return (
        tf.data.Dataset.from_tensor_slices({"images": images, "texts": texts})
        .shuffle(NUM_EXAMPLES, seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
    )


def make_contrastive_trainer(strategy, model_dir, accumulation_steps):
    import keras

    from mmzoo.losses import CLIPLoss
    from mmzoo.training import Trainer

    with strategy.scope():
        model = build_contrastive_model()
        optimizer = keras.optimizers.SGD(0.5)
    # The all-gather of global negatives cannot be XLA-compiled on CPU.
    return Trainer(model, CLIPLoss(), optimizer, strategy=strategy, model_dir=model_dir,
                   accumulation_steps=accumulation_steps, jit_compile=False)


def make_trainer(strategy, model_dir, dropout_rate=0.25, momentum=False):
    import keras

    from mmzoo.losses import CLIPLoss
    from mmzoo.training import Trainer
    from mmzoo.training import warmup_cosine_decay

    with strategy.scope():
        model = (build_momentum_model if momentum else build_model)(dropout_rate=dropout_rate)
        optimizer = keras.optimizers.AdamW(
            warmup_cosine_decay(1e-2, total_steps=40, warmup_steps=5),
            weight_decay=0.01,
            global_clipnorm=1.0,
            use_ema=True,
            ema_momentum=0.9,
        )
    return Trainer(
        model,
        CLIPLoss() if momentum else keras.losses.SparseCategoricalCrossentropy(from_logits=True),
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
    parser.add_argument("--contrastive", action="store_true")
    parser.add_argument("--accumulation-steps", type=int, default=1)
    parser.add_argument("--momentum", action="store_true")
    parser.add_argument("--per-worker", action="store_true")
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

    if args.contrastive:
        trainer = make_contrastive_trainer(strategy, args.model_dir, args.accumulation_steps)
        dataset = make_contrastive_dataset(GLOBAL_BATCH)
    else:
        trainer = make_trainer(strategy, args.model_dir, args.dropout_rate, args.momentum)
        dataset = make_momentum_dataset() if args.momentum else make_dataset()
    decoded = []
    if args.per_worker:
        dataset = make_dataset_fn(decoded)
    callbacks = []
    if args.step_delay:
        # Slow steps so the parent can kill the run at a step of its choice.
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_train_batch_end=lambda batch, logs: time.sleep(args.step_delay)
            )
        )
    rows = trainer.fit(
        dataset,
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
        paths=np.asarray([v.path for v in trainer.model.variables]),
        decoded=np.asarray(decoded, dtype="int64"),
        **weights,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
