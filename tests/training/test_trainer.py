import os

import keras
import numpy as np
import tensorflow as tf

from mmzoo.presets import build_from_preset
from mmzoo.testing import TestCase
from mmzoo.training import Trainer
from mmzoo.training import get_strategy


def build_dense_model(seed=0, dtype=None, dict_inputs=False):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), name="features")
    x = keras.layers.Dense(16, activation="relu", name="hidden", dtype=dtype)(inputs)
    outputs = keras.layers.Dense(3, name="logits", dtype=dtype)(x)
    return keras.Model({"features": inputs} if dict_inputs else inputs, outputs,
                       name="dense_model")


def build_vit_classifier(seed=0):
    """The tiny ViT preset (one block, to compile fast) with a regularised head."""
    keras.utils.set_random_seed(seed)
    encoder = build_from_preset("vit_image_encoder_tiny", num_layers=1)
    images = keras.Input((32, 32, 3), name="images")
    pooled = encoder(images)["pooled_output"]
    logits = keras.layers.Dense(
        4, kernel_regularizer=keras.regularizers.L2(1e-3), name="head"
    )(pooled)
    return keras.Model(images, logits, name="vit_classifier")


def dense_data(num_examples=32, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.normal(size=(num_examples, 6)).astype("float32")
    y = rng.randint(0, 3, size=(num_examples,)).astype("int32")
    return x, y


def dataset(arrays, batch_size, repeat=True):
    ds = tf.data.Dataset.from_tensor_slices(arrays)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size, drop_remainder=True)


def sparse_ce():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def weights_of(model):
    return [v.numpy() for v in model.trainable_variables]


class TrainerTest(TestCase):
    def setUp(self):
        super().setUp()
        self.data = dense_data()
        self.mirrored = get_strategy("mirrored")
        self.assertEqual(self.mirrored.num_replicas_in_sync, 2)

    def train(self, strategy=None, steps=4, batch_size=8, model_fn=build_dense_model,
              loss=None, optimizer_fn=lambda: keras.optimizers.SGD(0.1), data=None,
              **trainer_kwargs):
        strategy = strategy or tf.distribute.get_strategy()
        with strategy.scope():
            model = model_fn()
            optimizer = optimizer_fn()
        trainer = Trainer(model, loss or sparse_ce(), optimizer, strategy=strategy,
                          **trainer_kwargs)
        rows = trainer.fit(dataset(self.data if data is None else data, batch_size), steps=steps,
                           log_every=1, verbose=0)
        return trainer, rows

    # ------------------------------------------------ equivalences
    def test_mirrored_matches_one_device(self):
        # SGD: Adam's normalisation turns float noise in near-zero gradients
        # into updates of the learning rate's size.
        optimizer_fn = lambda: keras.optimizers.SGD(0.1, momentum=0.9)  # noqa: E731
        one, one_rows = self.train(model_fn=build_vit_classifier, data=vit_data(),
                                   optimizer_fn=optimizer_fn)
        two, two_rows = self.train(self.mirrored, model_fn=build_vit_classifier,
                                   data=vit_data(), optimizer_fn=optimizer_fn)
        self.assertAllCloseNested(weights_of(one.model), weights_of(two.model), atol=1e-5)
        self.assertAllClose([r["loss"] for r in one_rows], [r["loss"] for r in two_rows],
                            atol=1e-5)

    def test_matches_model_fit_with_sgd(self):
        data = vit_data()
        trainer, _ = self.train(model_fn=build_vit_classifier, data=data, steps=3)
        model = build_vit_classifier()
        model.compile(keras.optimizers.SGD(0.1), sparse_ce(), jit_compile=True)
        model.fit(dataset(data, 8), steps_per_epoch=3, epochs=1, shuffle=False, verbose=0)
        self.assertAllCloseNested(weights_of(model), weights_of(trainer.model), atol=1e-6)

    def test_accumulation_equals_one_big_batch(self):
        optimizer_fn = lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.1)  # noqa: E731
        big, _ = self.train(batch_size=16, optimizer_fn=optimizer_fn)
        micro, _ = self.train(batch_size=8, optimizer_fn=optimizer_fn, accumulation_steps=2)
        self.assertAllCloseNested(weights_of(big.model), weights_of(micro.model), atol=1e-6)
        self.assertEqual(micro.step, 4)
        self.assertEqual(int(micro.optimizer.iterations.numpy()), 4)

    def test_accumulation_under_mirrored_matches_one_device(self):
        one, _ = self.train(batch_size=16)
        two, _ = self.train(self.mirrored, batch_size=8, accumulation_steps=2)
        self.assertAllCloseNested(weights_of(one.model), weights_of(two.model), atol=1e-6)

    def test_global_norm_clipping_bounds_the_update(self):
        model = build_dense_model()
        before = weights_of(model)
        trainer = Trainer(model, sparse_ce(), keras.optimizers.SGD(1.0, global_clipnorm=1e-3))
        rows = trainer.fit(dataset(self.data, 8), steps=1, verbose=0, log_every=1)
        update = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(weights_of(model), before)))
        self.assertGreater(rows[0]["gradient_norm"], 1e-3)
        self.assertAllClose(update, 1e-3, rtol=1e-4)

    def test_clipping_under_mirrored_uses_the_global_gradient(self):
        optimizer_fn = lambda: keras.optimizers.SGD(0.5, global_clipnorm=0.05)  # noqa: E731
        one, _ = self.train(optimizer_fn=optimizer_fn)
        two, _ = self.train(self.mirrored, optimizer_fn=optimizer_fn)
        self.assertAllCloseNested(weights_of(one.model), weights_of(two.model), atol=1e-6)

    def test_one_device_strategy_matches_the_default_strategy(self):
        default, _ = self.train()
        one_device, _ = self.train(get_strategy("one_device"))
        self.assertAllCloseNested(weights_of(default.model), weights_of(one_device.model),
                                  atol=1e-6)

    def test_jit_compile_off_matches_on(self):
        on, _ = self.train()
        off, _ = self.train(self.mirrored, jit_compile=False)
        self.assertAllCloseNested(weights_of(on.model), weights_of(off.model), atol=1e-6)

    # ------------------------------------------------------ losses
    def test_callable_scalar_loss_equals_keras_loss(self):
        def loss(y_true, y_pred):
            return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
                y_true, y_pred, from_logits=True))

        keras_loss, _ = self.train(self.mirrored)
        callable_loss, _ = self.train(self.mirrored, loss=loss)
        self.assertAllCloseNested(weights_of(keras_loss.model), weights_of(callable_loss.model),
                                  atol=1e-6)

    def test_per_example_loss_is_averaged_over_the_global_batch(self):
        def per_example(y_true, y_pred):
            return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)

        one, one_rows = self.train(loss=per_example)
        two, two_rows = self.train(self.mirrored, loss=per_example)
        reference, _ = self.train()
        self.assertAllCloseNested(weights_of(one.model), weights_of(two.model), atol=1e-6)
        self.assertAllCloseNested(weights_of(one.model), weights_of(reference.model), atol=1e-6)

    def test_sample_weights_scale_the_loss(self):
        x, y = self.data
        weighted, rows = self.train(data=(x, y, np.full((len(x),), 2.0, "float32")))
        plain, plain_rows = self.train(data=(x, y))
        self.assertAllClose(rows[0]["loss"], 2 * plain_rows[0]["loss"], rtol=1e-6)

    def test_dataset_of_input_dicts_passes_none_labels(self):
        seen = []

        def contrastive_like(y_true, y_pred):
            seen.append(y_true)
            return keras.ops.mean(keras.ops.square(y_pred))

        x, _ = self.data
        trainer, rows = self.train(self.mirrored, loss=contrastive_like, data={"features": x},
                                   model_fn=lambda: build_dense_model(dict_inputs=True))
        self.assertNotEmpty(seen)
        self.assertTrue(all(y is None for y in seen))
        self.assertLess(rows[-1]["loss"], rows[0]["loss"])

    # ------------------------------------------------ model and optimizer in scope
    def test_model_fn_builds_under_the_strategy(self):
        trainer = Trainer(model_fn=build_dense_model, loss=sparse_ce(),
                          optimizer=keras.optimizers.SGD(0.1), strategy=self.mirrored)
        for v in trainer.model.variables:
            self.assertTrue(self.mirrored.extended.variable_created_in_scope(v.value))

    def test_strategy_by_name(self):
        trainer = Trainer(model_fn=build_dense_model, loss=sparse_ce(),
                          optimizer=keras.optimizers.SGD(0.1), strategy="mirrored")
        self.assertIs(trainer.strategy, self.mirrored)

    def test_unknown_strategy_name(self):
        with self.assertRaisesRegex(ValueError, "Received: strategy='horovod'"):
            Trainer(model_fn=build_dense_model, loss=sparse_ce(),
                    optimizer=keras.optimizers.SGD(0.1), strategy="horovod")

    def test_model_built_outside_the_scope_is_refused(self):
        with self.assertRaisesRegex(ValueError, "not created under this strategy's scope"):
            Trainer(build_dense_model(), sparse_ce(), keras.optimizers.SGD(0.1),
                    strategy=self.mirrored)

    def test_unbuilt_optimizer_from_outside_the_scope_is_recreated(self):
        optimizer = keras.optimizers.SGD(0.1)  # made outside the scope
        with self.mirrored.scope():
            model = build_dense_model()
        trainer = Trainer(model, sparse_ce(), optimizer, strategy=self.mirrored)
        self.assertIsNot(trainer.optimizer, optimizer)
        trainer.fit(dataset(self.data, 8), steps=1, verbose=0)
        self.assertEqual(trainer.step, 1)

    # ------------------------------------------------ mixed precision
    def test_mixed_bfloat16(self):
        trainer, rows = self.train(model_fn=lambda: build_dense_model(dtype="mixed_bfloat16"),
                                   steps=3)
        self.assertEqual(trainer.model(self.data[0][:2]).dtype, "bfloat16")
        for v in trainer.model.trainable_variables:
            self.assertEqual(v.dtype, "float32")
        self.assertTrue(all(np.isfinite(r["loss"]) for r in rows))

    def test_mixed_float16_uses_loss_scaling(self):
        trainer, rows = self.train(model_fn=lambda: build_dense_model(dtype="mixed_float16"),
                                   optimizer_fn=lambda: keras.optimizers.AdamW(1e-2), steps=3)
        self.assertIsInstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
        self.assertTrue(all(np.isfinite(r["loss"]) for r in rows))
        # The reported gradient norm is unscaled (comparable to float32's).
        reference, reference_rows = self.train(optimizer_fn=lambda: keras.optimizers.AdamW(1e-2),
                                               steps=1)
        self.assertAllClose(rows[0]["gradient_norm"], reference_rows[0]["gradient_norm"],
                            rtol=2e-2)

    # ------------------------------------------------------------ EMA
    # ------------------------------------------------ dataset functions
    def dataset_fn(self, contexts=None, shuffle=False):
        """Per-replica batches of `self.data`, as `distribute_datasets_from_function` takes."""

        def dataset_fn(context):
            if contexts is not None:
                contexts.append(context)
            ds = tf.data.Dataset.from_tensor_slices(self.data)
            if shuffle:
                ds = ds.shuffle(32, seed=3, reshuffle_each_iteration=True)
            ds = ds.repeat().shard(context.num_input_pipelines, context.input_pipeline_id)
            return ds.batch(context.get_per_replica_batch_size(8), drop_remainder=True)

        return dataset_fn

    def fit_function(self, strategy, steps, model_dir=None, shuffle=False, **trainer_kwargs):
        with strategy.scope():
            model = build_dense_model()
        trainer = Trainer(model, sparse_ce(), keras.optimizers.SGD(0.1), strategy=strategy,
                          model_dir=model_dir, **trainer_kwargs)
        contexts = []
        rows = trainer.fit(self.dataset_fn(contexts, shuffle),
                           steps=steps, log_every=1, verbose=0)
        return trainer, rows, contexts

    def test_dataset_function_gives_each_replica_its_own_batches(self):
        # Two replicas each take the next per-replica batch of 4 in turn:
        # the same rows as a global batch of 8 sliced in two.
        sliced, sliced_rows = self.train(self.mirrored, accumulation_steps=2)
        trainer, rows, contexts = self.fit_function(self.mirrored, 4, accumulation_steps=2)
        self.assertEqual(len(contexts), 1)
        self.assertEqual(
            (contexts[0].num_input_pipelines, contexts[0].input_pipeline_id,
             contexts[0].num_replicas_in_sync), (1, 0, 2))
        self.assertAllCloseNested(weights_of(trainer.model), weights_of(sliced.model), atol=1e-6)
        self.assertAllClose([r["loss"] for r in rows], [r["loss"] for r in sliced_rows],
                            atol=1e-6)

    def test_dataset_function_resumes_exactly(self):
        model_dir = os.path.join(self.get_temp_dir(), "run")
        self.fit_function(self.mirrored, 3, model_dir, shuffle=True)
        resumed, rows, _ = self.fit_function(self.mirrored, 6, model_dir, shuffle=True)
        self.assertEqual([r["step"] for r in rows], [4, 5, 6])
        # One process: its iterator is in the run's own checkpoint.
        self.assertFalse(os.path.exists(os.path.join(model_dir, "input")))
        reference, reference_rows, _ = self.fit_function(self.mirrored, 6, shuffle=True)
        self.assertAllCloseNested(weights_of(resumed.model), weights_of(reference.model),
                                  atol=1e-6)
        self.assertAllClose([r["loss"] for r in rows], [r["loss"] for r in reference_rows[3:]],
                            atol=1e-6)

    def test_dataset_function_must_return_a_dataset(self):
        trainer = Trainer(build_dense_model(), sparse_ce(), keras.optimizers.SGD(0.1))
        with self.assertRaisesRegex(ValueError, "must return a tf.data.Dataset.*Received: 3"):
            trainer.fit(lambda context: 3, steps=1, verbose=0)
        with self.assertRaisesRegex(ValueError, "or a function that takes a tf.distribute"):
            trainer.fit([1, 2], steps=1, verbose=0)

    def test_resuming_with_the_other_input_form_is_a_clear_error(self):
        # A run read whole by every worker has one input position in its
        # checkpoint; a per-worker run has one per worker beside it. Neither
        # resumes as the other (the multi-worker side is checked here on
        # the checkpoints themselves; the two-worker tests run the real thing).
        model_dir = os.path.join(self.get_temp_dir(), "run")
        trainer = Trainer(build_dense_model(), sparse_ce(), keras.optimizers.SGD(0.1),
                          model_dir=model_dir)
        trainer.fit(dataset(self.data, 8), steps=1, verbose=0)
        path = os.path.join(model_dir, "ckpt-1")
        with self.assertRaisesRegex(ValueError, "every worker read whole.*Received: a dataset "
                                    "function"):
            trainer._check_resumed_input(path, 8, per_replica=True, worker_input=True)
        self.assertTrue(trainer._check_resumed_input(path, 8, per_replica=True))

        per_worker = os.path.join(self.get_temp_dir(), "per_worker", "ckpt-1")
        trainer._input_shape.assign([8, 1])
        trainer._make_checkpoint(input_shape=True).write(per_worker)  # no iterator
        with self.assertRaisesRegex(ValueError, "each worker reading its own share.*Received: "
                                    "a tf.data.Dataset"):
            trainer._check_resumed_input(per_worker, 8)
        with self.assertRaisesRegex(ValueError, "Received: a dataset function in one process"):
            trainer._check_resumed_input(per_worker, 8, per_replica=True)

        # A run of two workers resumed on three: the third has no position.
        os.makedirs(os.path.join(model_dir, "input", "pipeline-00000-of-00002"))
        os.makedirs(os.path.join(model_dir, "input", "pipeline-00001-of-00002"))
        trainer._input_context = tf.distribute.InputContext(3, 2, 3)
        with self.assertRaisesRegex(ValueError, r"pipeline-00002-of-00003/ckpt-1' is missing"
                                    r".*\['pipeline-00000-of-00002', 'pipeline-00001-of-00002'\]"
                                    ".*Received: input pipeline 2 of 3"):
            trainer._restore_worker_input(tf.train.Checkpoint(), path)

    def test_evaluate_uses_ema_weights_and_restores_the_trained_ones(self):
        trainer, _ = self.train(optimizer_fn=lambda: keras.optimizers.AdamW(
            5e-2, use_ema=True, ema_momentum=0.9), steps=5)
        trained = weights_of(trainer.model)
        averages = [v.numpy() for v in trainer.optimizer._model_variables_moving_average]
        eval_ds = dataset(self.data, 8, repeat=False)
        ema_loss = trainer.evaluate(eval_ds)["loss"]
        plain_loss = trainer.evaluate(eval_ds, use_ema_weights=False)["loss"]
        self.assertNotAllClose(ema_loss, plain_loss)
        with trainer.ema_weights() as model:
            self.assertAllCloseNested(weights_of(model), averages, atol=0, rtol=0)
        self.assertAllCloseNested(weights_of(trainer.model), trained, atol=0, rtol=0)

    def test_save_model_writes_the_ema_weights(self):
        trainer, _ = self.train(optimizer_fn=lambda: keras.optimizers.AdamW(
            5e-2, use_ema=True, ema_momentum=0.9), steps=3)
        trained = weights_of(trainer.model)
        averages = [v.numpy() for v in trainer.optimizer._model_variables_moving_average]
        path = trainer.save_model(os.path.join(self.get_temp_dir(), "final.keras"))
        restored = keras.saving.load_model(path, safe_mode=True)
        self.assertAllCloseNested(weights_of(restored), averages, atol=0, rtol=0)
        self.assertAllCloseNested(weights_of(trainer.model), trained, atol=0, rtol=0)

    def test_ema_weights_without_ema_is_an_error(self):
        trainer, _ = self.train(steps=1)
        with self.assertRaisesRegex(ValueError, "use_ema=True"):
            with trainer.ema_weights():
                pass

    # ------------------------------------------------------- evaluate
    def test_evaluate_is_the_mean_loss_over_the_dataset(self):
        trainer, _ = self.train(self.mirrored, steps=2)
        x, y = self.data
        expected = float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
            y, trainer.model(x), from_logits=True)))
        result = trainer.evaluate(dataset(self.data, 8, repeat=False))
        self.assertAllClose(result["loss"], expected, rtol=1e-5)
        self.assertAllClose(trainer.evaluate(dataset(self.data, 8), steps=4)["loss"], expected,
                            rtol=1e-5)

    def test_evaluate_does_not_depend_on_accumulation(self):
        trainer = Trainer(build_dense_model(), sparse_ce(), keras.optimizers.SGD(0.1),
                          accumulation_steps=2)
        plain = Trainer(build_dense_model(), sparse_ce(), keras.optimizers.SGD(0.1))
        eval_ds = dataset(self.data, 8, repeat=False)
        self.assertAllClose(trainer.evaluate(eval_ds)["loss"], plain.evaluate(eval_ds)["loss"])

    # ------------------------------------------------------ callbacks
    def test_callbacks_see_each_step_and_can_stop_training(self):
        seen = []

        def on_batch_end(batch, logs):
            seen.append((batch, logs["loss"]))
            if batch == 3:
                trainer.model.stop_training = True

        trainer = Trainer(build_dense_model(), sparse_ce(), keras.optimizers.SGD(0.1))
        rows = trainer.fit(dataset(self.data, 8), steps=10, verbose=0, log_every=1, callbacks=[
            keras.callbacks.LambdaCallback(on_train_batch_end=on_batch_end)])
        self.assertEqual([b for b, _ in seen], [1, 2, 3])
        self.assertEqual(trainer.step, 3)
        self.assertEqual([r["loss"] for r in rows], [loss for _, loss in seen])

    # ------------------------------------------------------ bad input
    def test_embedding_gradients_reach_the_optimizer_dense(self):
        # An IndexedSlices gradient made the XLA-compiled update recompile at
        # every step; the Trainer densifies gradients before the update.
        inputs = keras.Input((4,), dtype="int32")
        outputs = keras.layers.Dense(1)(keras.layers.Embedding(10, 3)(inputs))
        model = keras.Model(inputs, outputs)
        trainer = Trainer(model, keras.losses.MeanSquaredError(), keras.optimizers.Adam())
        data = (np.array([[1, 2, 3, 4]], "int32"), np.zeros((1, 4, 1), "float32"))
        _, grads = trainer._replica_gradients(data)
        self.assertFalse(any(isinstance(g, tf.IndexedSlices) for g in grads))
        trainer.fit(tf.data.Dataset.from_tensors(data).repeat(), steps=2, verbose=0)
        self.assertEqual(trainer.step, 2)

    def test_steps_must_be_positive(self):
        trainer = Trainer(build_dense_model(), sparse_ce(), keras.optimizers.SGD(0.1))
        with self.assertRaisesRegex(ValueError, "Received: steps=0"):
            trainer.fit(dataset(self.data, 8), steps=0)

    def test_accumulation_steps_must_be_positive(self):
        with self.assertRaisesRegex(ValueError, "Received: accumulation_steps=0"):
            Trainer(build_dense_model(), sparse_ce(), keras.optimizers.SGD(0.1),
                    accumulation_steps=0)

    def test_dataset_needs_a_static_batch_size(self):
        trainer = Trainer(build_dense_model(), sparse_ce(), keras.optimizers.SGD(0.1))
        unbatched_remainder = tf.data.Dataset.from_tensor_slices(self.data).batch(8)
        with self.assertRaisesRegex(ValueError, "static batch size.*drop_remainder=True"):
            trainer.fit(unbatched_remainder, steps=1)

    def test_batch_must_divide_across_replicas(self):
        with self.mirrored.scope():
            model = build_dense_model()
        trainer = Trainer(model, sparse_ce(), keras.optimizers.SGD(0.1), strategy=self.mirrored)
        with self.assertRaisesRegex(ValueError, r"replicas \(2\).*Received: batch_size=3"):
            trainer.fit(dataset(self.data, 3), steps=1)

    def test_dataset_must_be_a_tf_data_dataset(self):
        trainer = Trainer(build_dense_model(), sparse_ce(), keras.optimizers.SGD(0.1))
        with self.assertRaisesRegex(ValueError, "Received: dataset="):
            trainer.fit(self.data, steps=1)

    def test_pass_exactly_one_of_model_and_model_fn(self):
        with self.assertRaisesRegex(ValueError, "exactly one of `model` and `model_fn`"):
            Trainer(None, sparse_ce(), keras.optimizers.SGD(0.1))

    def test_keras_loss_with_a_per_replica_divisor_is_refused(self):
        loss = keras.losses.MeanSquaredError(reduction="mean_with_sample_weight")
        with self.assertRaisesRegex(ValueError, "Received: reduction='mean_with_sample_weight'"):
            Trainer(build_dense_model(), loss, keras.optimizers.SGD(0.1))


def vit_data(num_examples=16, seed=0):
    rng = np.random.RandomState(seed)
    images = rng.rand(num_examples, 32, 32, 3).astype("float32")
    labels = rng.randint(0, 4, size=(num_examples,)).astype("int32")
    return images, labels
