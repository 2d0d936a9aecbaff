"""Faults and wrong inputs in training: each gets a clear answer and loses no work."""

import contextlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmzoo.testing import TestCase
from mmzoo.training import Trainer
from mmzoo.training import get_strategy
from mmzoo.training import latest_checkpoint


def build_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), name="features")
    x = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


def arrays(num_examples=32, seed=0):
    rng = np.random.RandomState(seed)
    return (rng.normal(size=(num_examples, 6)).astype("float32"),
            rng.randint(0, 3, size=(num_examples,)).astype("int32"))


def dataset(batch_size=8, repeat=True, num_examples=32):
    ds = tf.data.Dataset.from_tensor_slices(arrays(num_examples))
    ds = ds.repeat() if repeat else ds
    return ds.batch(batch_size, drop_remainder=True)


def trainer(model_dir=None, strategy=None, jit_compile=True, **kwargs):
    return Trainer(
        model_fn=build_model,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=keras.optimizers.AdamW(1e-2),
        strategy=strategy,
        model_dir=model_dir,
        jit_compile=jit_compile,
        **kwargs,
    )


class TrainerFaultsTest(TestCase):
    def test_one_replica_mirrored_strategy_trains_with_and_without_xla(self):
        # A single-GPU machine, or one CPU device, under MirroredStrategy: Keras's
        # optimizer calls merge_call, which an XLA-compiled update refused.
        reference = trainer(strategy=get_strategy("one_device"))
        reference.fit(dataset(), steps=3, verbose=0)
        expected = [v.numpy() for v in reference.model.trainable_variables]
        strategy = get_strategy("mirrored", devices=["/cpu:0"])
        self.assertEqual(strategy.num_replicas_in_sync, 1)
        for jit_compile in (True, False):
            run = trainer(strategy=strategy, jit_compile=jit_compile)
            rows = run.fit(dataset(), steps=3, verbose=0)
            self.assertEqual(rows[-1]["step"], 3)
            for got, want in zip(run.model.trainable_variables, expected):
                self.assertAllClose(got.numpy(), want, atol=1e-5)

    def test_resume_with_another_batch_size_names_both(self):
        model_dir = self.get_temp_dir()
        trainer(model_dir).fit(dataset(batch_size=8), steps=2, verbose=0)
        with self.assertRaisesRegex(
            ValueError, r"trained with a global batch of 8 \(accumulation_steps=1\); this "
            r"dataset has batches of 4 .* Received: batch_size=4, saved batch_size=8",
        ):
            trainer(model_dir).fit(dataset(batch_size=4), steps=4, verbose=0)
        # The same batch size still resumes.
        rows = trainer(model_dir).fit(dataset(batch_size=8), steps=4, verbose=0)
        self.assertEqual(rows[-1]["step"], 4)

    def test_finite_dataset_shorter_than_the_run_is_refused_at_the_start(self):
        model_dir = self.get_temp_dir()
        with self.assertRaisesRegex(
            ValueError, r"holds 4 batches, but steps=6 .* needs 6\. Repeat it"
        ):
            trainer(model_dir).fit(dataset(repeat=False), steps=6, verbose=0)
        self.assertIsNone(latest_checkpoint(model_dir))

    def test_dataset_ending_midway_keeps_the_last_step(self):
        # A filter makes the length unknown: found when the data runs out.
        data = dataset(repeat=False).filter(lambda x, y: True)
        self.assertLess(int(data.cardinality()), 0)
        model_dir = self.get_temp_dir()
        run = trainer(model_dir)
        with self.assertRaisesRegex(ValueError, r"The dataset ended at step 5 of steps=9"):
            run.fit(data, steps=9, checkpoint_every=100, verbose=0)
        self.assertTrue(latest_checkpoint(model_dir).endswith("ckpt-4"))

    def test_partial_checkpoint_directories_are_removed_at_the_next_start(self):
        model_dir = self.get_temp_dir()
        trainer(model_dir).fit(dataset(), steps=2, verbose=0)
        partial = os.path.join(model_dir, "ckpt-3_temp")
        os.makedirs(partial)
        with open(os.path.join(partial, "part-00000-of-00001.data-00000-of-00001"), "wb") as f:
            f.write(b"\0" * 16)
        trainer(model_dir).fit(dataset(), steps=3, verbose=0)
        self.assertFalse(os.path.exists(partial))
        self.assertTrue(latest_checkpoint(model_dir).endswith("ckpt-3"))

    def test_progress_shows_the_compile_phase_and_resumed_steps(self):
        model_dir = self.get_temp_dir()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            trainer(model_dir).fit(dataset(), steps=2, verbose=1)
        self.assertIn("Step 1/2: tracing and compiling the training step...", out.getvalue())
        self.assertIn("Compiled and ran the first step in", out.getvalue())
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            trainer(model_dir).fit(dataset(), steps=5, verbose=1)
        text = out.getvalue()
        self.assertIn("Step 3/5 (resumed at step 2): tracing and compiling", text)
        self.assertIn("5/5", text)  # global steps, not steps of this call
        self.assertNotIn("3/3", text)

    def test_evaluate_scores_every_example_of_a_padded_last_batch(self):
        # 30 examples in batches of 8: the last batch padded with 2 rows of weight 0,
        # as mmzoo's pipelines pad it with `repeat=False` (`example_mask`).
        x, y = arrays(32)
        weight = np.array([1.0] * 30 + [0.0] * 2, "float32")
        padded = tf.data.Dataset.from_tensor_slices((x, y, weight)).batch(8, drop_remainder=True)
        for strategy in (None, get_strategy("mirrored")):
            run = trainer(strategy=strategy, jit_compile=strategy is None)
            expected = float(np.mean(keras.losses.sparse_categorical_crossentropy(
                y[:30], run.model(x[:30]), from_logits=True)))
            self.assertAllClose(run.evaluate(padded)["loss"], expected, rtol=1e-5)

    def test_rewritten_metrics_file_respects_the_umask(self):
        # A resume drops the log rows after its checkpoint by rewriting the
        # file through a temporary (0600) one.
        model_dir = self.get_temp_dir()
        trainer(model_dir).fit(dataset(), steps=2, log_every=1, verbose=0)
        path = os.path.join(model_dir, "metrics.jsonl")
        with open(path, "a") as f:
            f.write('{"step": 3, "loss": 1.0}\n')  # logged, then killed before its checkpoint
        previous = os.umask(0o022)
        try:
            trainer(model_dir).fit(dataset(), steps=3, log_every=1, verbose=0)
        finally:
            os.umask(previous)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o644)
        with open(path) as f:
            self.assertEqual([json.loads(line)["step"] for line in f], [1, 2, 3])

    def test_bad_deterministic_flag(self):
        with self.assertRaisesRegex(ValueError, "Received: deterministic='yes'"):
            trainer(deterministic="yes")


_SIGTERM_CHILD = textwrap.dedent(
    """
    import os, sys, time
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import keras, numpy as np, tensorflow as tf
    from mmzoo.training import Trainer

    model_dir, flag = sys.argv[1:3]

    class Flag(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3:
                open(flag, "w").close()
            time.sleep(0.02)

    def build():
        inputs = keras.Input((6,))
        return keras.Model(inputs, keras.layers.Dense(3)(inputs))

    x = np.zeros((32, 6), "float32"); y = np.zeros((32,), "int32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(8, drop_remainder=True)
    trainer = Trainer(model_fn=build, optimizer="adam", model_dir=model_dir,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    trainer.fit(data, steps=10**6, checkpoint_every=10**6, verbose=0, callbacks=[Flag()])
    """
)


@pytest.mark.slow
class TrainerSignalsTest(TestCase):
    def test_sigterm_on_one_worker_saves_a_checkpoint_and_exits_42(self):
        model_dir = os.path.join(self.get_temp_dir(), "run")
        flag = os.path.join(self.get_temp_dir(), "started")
        child = subprocess.Popen(
            [sys.executable, "-c", _SIGTERM_CHILD, model_dir, flag],
            stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 300
        while not os.path.exists(flag) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertTrue(os.path.exists(flag), msg="the child never reached step 3")
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=300)
        self.assertEqual(child.returncode, 42, msg=stderr[-2000:])
        self.assertIn("SIGTERM: saved the checkpoint of step", stderr)
        step = int(latest_checkpoint(model_dir).rsplit("-", 1)[1])
        self.assertGreaterEqual(step, 3)
