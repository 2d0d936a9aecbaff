import os
import random
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmzoo.testing import TestCase
from mmzoo.training import Trainer
from mmzoo.training import latest_checkpoint
from mmzoo.training import read_metrics
from mmzoo.training import save_model

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "training_child.py")


def build_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), name="features")
    x = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    x = keras.layers.Dropout(0.2, seed=seed, name="dropout")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, outputs, name="checkpointed_model")


def make_dataset(x=None, seed=0):
    rng = np.random.RandomState(seed)
    if x is None:
        x = rng.normal(size=(36, 6)).astype("float32")
    y = rng.randint(0, 3, size=(len(x),)).astype("int32")
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed)
        .repeat()
        .batch(8, drop_remainder=True)
    )


def make_trainer(model_dir):
    return Trainer(
        build_model(),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        keras.optimizers.AdamW(1e-2, use_ema=True),
        model_dir=model_dir,
    )


def all_weights(model):
    return [v.numpy() for v in model.weights]


class SaveModelTest(TestCase):
    def setUp(self):
        super().setUp()
        self.model = build_model()
        self.x = np.random.RandomState(0).normal(size=(2, 6)).astype("float32")
        self.directory = self.get_temp_dir()

    def test_saved_model_loads_with_the_same_outputs(self):
        path = save_model(self.model, os.path.join(self.directory, "nested", "model.keras"))
        restored = keras.saving.load_model(path, safe_mode=True)
        self.assertAllClose(self.model(self.x), restored(self.x))
        self.assertEqual(os.listdir(os.path.dirname(path)), ["model.keras"])

    def test_failed_save_keeps_the_previous_file_and_no_temporary(self):
        path = save_model(self.model, os.path.join(self.directory, "model.keras"))
        with open(path, "rb") as f:
            before = f.read()

        def failing_save(filepath, overwrite=True):
            with open(filepath, "wb") as f:
                f.write(b"half a zip")
            raise OSError("disk full")

        other = build_model(seed=1)
        other.save = failing_save
        with self.assertRaisesRegex(OSError, "disk full"):
            save_model(other, path)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), before)
        self.assertEqual(os.listdir(self.directory), ["model.keras"])

    def test_path_must_end_in_keras(self):
        with self.assertRaisesRegex(ValueError, "Received: filepath='model.h5'"):
            save_model(self.model, "model.h5")


class CheckpointTest(TestCase):
    def setUp(self):
        super().setUp()
        self.model_dir = self.get_temp_dir()

    def test_fit_resumes_mid_epoch_where_it_stopped(self):
        # 36 examples in batches of 8: step 7 starts in the middle of an epoch.
        uninterrupted = make_trainer(os.path.join(self.model_dir, "a"))
        uninterrupted.fit(make_dataset(), steps=10, checkpoint_every=100, verbose=0)

        first = make_trainer(os.path.join(self.model_dir, "b"))
        first.fit(make_dataset(), steps=6, checkpoint_every=3, verbose=0)
        resumed = make_trainer(os.path.join(self.model_dir, "b"))  # fresh weights
        resumed.fit(make_dataset(), steps=10, checkpoint_every=100, verbose=0)

        self.assertEqual(resumed.step, 10)
        self.assertAllCloseNested(all_weights(uninterrupted.model), all_weights(resumed.model),
                                  atol=0, rtol=0)

    def test_pipelines_with_python_functions_are_checkpointed(self):
        def through_numpy(x, y):
            x = tf.numpy_function(lambda v: v * 2, [x], tf.float32)
            return tf.ensure_shape(x, (6,)), y

        def numpy_dataset():
            return make_dataset().unbatch().map(through_numpy).batch(8, drop_remainder=True)

        uninterrupted = make_trainer(os.path.join(self.model_dir, "a"))
        uninterrupted.fit(numpy_dataset(), steps=6, verbose=0)
        make_trainer(os.path.join(self.model_dir, "b")).fit(numpy_dataset(), steps=3, verbose=0)
        resumed = make_trainer(os.path.join(self.model_dir, "b"))
        resumed.fit(numpy_dataset(), steps=6, verbose=0)
        self.assertAllCloseNested(all_weights(uninterrupted.model), all_weights(resumed.model),
                                  atol=0, rtol=0)

    def test_fit_after_the_last_step_does_nothing(self):
        trainer = make_trainer(self.model_dir)
        trainer.fit(make_dataset(), steps=4, verbose=0)
        again = make_trainer(self.model_dir)
        self.assertEqual(again.fit(make_dataset(), steps=4, verbose=0), [])
        self.assertAllCloseNested(all_weights(trainer.model), all_weights(again.model),
                                  atol=0, rtol=0)

    def test_restore_without_a_dataset(self):
        trainer = make_trainer(self.model_dir)
        trainer.fit(make_dataset(), steps=3, verbose=0)
        restored = make_trainer(self.model_dir)
        self.assertEqual(restored.restore(), 3)
        self.assertAllCloseNested(all_weights(trainer.model), all_weights(restored.model),
                                  atol=0, rtol=0)

    def test_restore_from_an_empty_directory_returns_none(self):
        self.assertIsNone(make_trainer(self.model_dir).restore())

    def test_keeps_the_newest_checkpoints(self):
        make_trainer(self.model_dir).fit(
            make_dataset(), steps=9, checkpoint_every=2, keep_checkpoints=2, verbose=0)
        indexes = sorted(f for f in os.listdir(self.model_dir) if f.endswith(".index"))
        self.assertEqual(indexes, ["ckpt-8.index", "ckpt-9.index"])

    def test_nan_loss_names_the_step_and_keeps_the_last_good_checkpoint(self):
        x = np.random.RandomState(0).normal(size=(64, 6)).astype("float32")
        x[48:56] = np.nan  # the 7th batch (no shuffling below)
        y = np.zeros((64,), "int32")
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8, drop_remainder=True)
        trainer = make_trainer(self.model_dir)
        with self.assertRaisesRegex(FloatingPointError, "Received: loss=nan at step 7"):
            trainer.fit(ds, steps=8, checkpoint_every=2, keep_checkpoints=2, log_every=1,
                        verbose=0)
        self.assertEqual(os.path.basename(latest_checkpoint(self.model_dir)), "ckpt-6")
        self.assertTrue(os.path.exists(os.path.join(self.model_dir, "ckpt-4.index")))
        self.assertEqual([r["step"] for r in read_metrics(self.model_dir)], [1, 2, 3, 4, 5, 6])
        self.assertEqual(make_trainer(self.model_dir).restore(), 6)

    def test_nan_on_a_checkpoint_step_is_not_saved(self):
        x = np.random.RandomState(0).normal(size=(64, 6)).astype("float32")
        x[56:64] = np.inf  # the 8th batch, a checkpoint step
        ds = tf.data.Dataset.from_tensor_slices((x, np.zeros((64,), "int32"))).batch(
            8, drop_remainder=True)
        with self.assertRaisesRegex(FloatingPointError, "Non-finite loss at step 8"):
            make_trainer(self.model_dir).fit(ds, steps=8, checkpoint_every=2,
                                             keep_checkpoints=1, verbose=0)
        self.assertEqual(os.path.basename(latest_checkpoint(self.model_dir)), "ckpt-6")


def _run_child(model_dir, out, **flags):
    args = [sys.executable, CHILD, "--model-dir", model_dir, "--out", out]
    for name, value in flags.items():
        flag = f"--{name.replace('_', '-')}"
        args += [flag] if value is True else [flag, str(value)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def _kill(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if proc.stdout and not proc.stdout.closed:
        proc.stdout.close()


def _wait(proc, timeout=300):
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        raise AssertionError(f"child timed out:\n{output[-3000:]}")
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{output[-3000:]}"


@pytest.mark.slow
class KillAndResumeTest(TestCase):
    def test_sigkill_at_a_random_step_then_restart_is_bit_identical(self):
        directory = self.get_temp_dir()
        steps, checkpoint_every = 40, 4
        # A random step after the first checkpoint, not on a checkpoint step.
        kill_after = random.Random().choice(
            [s for s in range(checkpoint_every + 1, steps - 2) if s % checkpoint_every])
        reference = _run_child(os.path.join(directory, "reference"),
                               os.path.join(directory, "reference.npz"), steps=steps,
                               checkpoint_every=checkpoint_every, momentum=True)
        self.addCleanup(_kill, reference)
        killed_dir = os.path.join(directory, "killed")
        killed = _run_child(killed_dir, os.path.join(directory, "killed.npz"), steps=steps,
                            checkpoint_every=checkpoint_every, step_delay=0.1, momentum=True)
        self.addCleanup(_kill, killed)
        deadline = time.monotonic() + 300
        while True:
            logged = [r["step"] for r in read_metrics(killed_dir)]
            if logged and logged[-1] >= kill_after:
                break
            self.assertIsNone(killed.poll(), msg="the child ended before it was killed")
            self.assertLess(time.monotonic(), deadline, msg="the child made no progress")
            time.sleep(0.02)
        killed.kill()  # SIGKILL
        killed.communicate(timeout=30)
        saved = int(os.path.basename(latest_checkpoint(killed_dir)).split("-")[1])
        self.assertGreaterEqual(saved, checkpoint_every)
        self.assertLess(saved, steps, msg=f"killed after step {kill_after}")
        self.assertFalse(os.path.exists(os.path.join(directory, "killed.npz")))

        restarted = _run_child(killed_dir, os.path.join(directory, "killed.npz"), steps=steps,
                               checkpoint_every=checkpoint_every, momentum=True)
        self.addCleanup(_kill, restarted)
        _wait(restarted)
        _wait(reference)
        with np.load(os.path.join(directory, "reference.npz")) as a, \
                np.load(os.path.join(directory, "killed.npz")) as b:
            weights = sorted(k for k in a.files if k.startswith("w"))
            # Trained weights, the dropout seed state, the momentum copy of
            # the towers and projections, the queues and their position.
            paths = list(a["paths"])
            self.assertLen(weights, len(paths))
            for expected in ("feature_queue/image_queue", "feature_queue/position",
                             "momentum_image_projection/output_dense/kernel",
                             "image_projection/output_dense/kernel"):
                self.assertIn(expected, paths)
            # The tower's and its momentum copy's.
            self.assertEqual(paths.count("token_embedding/embeddings"), 2)
            self.assertTrue(any("seed_generator" in p for p in paths), msg=paths)
            for key in weights:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{key}, killed after "
                                              f"step {kill_after}, resumed from {saved}")
            self.assertEqual(list(b["steps"]), list(range(saved + 1, steps + 1)))
            np.testing.assert_array_equal(a["losses"][saved:], b["losses"])
        # The metrics log of the killed run reads as one run.
        self.assertEqual([r["step"] for r in read_metrics(killed_dir)], list(range(1, steps + 1)))
