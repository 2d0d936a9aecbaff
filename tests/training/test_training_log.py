import contextlib
import glob
import io
import json
import os

import keras
import numpy as np
import tensorflow as tf

from mmzoo.testing import TestCase
from mmzoo.training import Trainer
from mmzoo.training import read_metrics
from mmzoo.training import warmup_cosine_decay
from mmzoo.training.training_log import METRICS_FILE


def build_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(1)(inputs))


def make_dataset():
    rng = np.random.RandomState(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(4, drop_remainder=True)


class TrainingLogTest(TestCase):
    def setUp(self):
        super().setUp()
        self.model_dir = self.get_temp_dir()
        self.schedule = warmup_cosine_decay(0.1, total_steps=10, warmup_steps=2)
        self.trainer = Trainer(build_model(), keras.losses.MeanSquaredError(),
                               keras.optimizers.SGD(self.schedule), model_dir=self.model_dir)

    def test_metrics_jsonl_has_one_row_per_logged_step(self):
        rows = self.trainer.fit(make_dataset(), steps=10, log_every=4, verbose=0)
        logged = read_metrics(self.model_dir)
        self.assertEqual(logged, json.loads(json.dumps(rows)))
        self.assertEqual([r["step"] for r in logged], [4, 8, 10])
        for row in logged:
            self.assertEqual(
                set(row),
                {"step", "loss", "learning_rate", "gradient_norm", "examples_per_second", "time"},
            )
            # The rate used by the step's update (iterations = step - 1).
            self.assertAllClose(row["learning_rate"], float(self.schedule(row["step"] - 1)))
            self.assertGreater(row["examples_per_second"], 0)

    def test_row_loss_is_the_mean_since_the_previous_row(self):
        every = self.trainer.fit(make_dataset(), steps=4, log_every=1, verbose=0)
        other = Trainer(build_model(), keras.losses.MeanSquaredError(),
                        keras.optimizers.SGD(self.schedule))
        windows = other.fit(make_dataset(), steps=4, log_every=2, verbose=0)
        self.assertAllClose([w["loss"] for w in windows],
                            [np.mean([r["loss"] for r in every[i:i + 2]]) for i in (0, 2)])

    def test_tensorboard_scalars(self):
        self.trainer.fit(make_dataset(), steps=4, log_every=2, verbose=0)
        (events,) = glob.glob(os.path.join(self.model_dir, "tensorboard", "events.out.*"))
        scalars = {}
        for event in tf.compat.v1.train.summary_iterator(events):
            for value in event.summary.value:
                self.assertEqual(value.metadata.plugin_data.plugin_name, "scalars")
                scalars.setdefault(value.tag, []).append(
                    (event.step, float(tf.make_ndarray(value.tensor))))
        self.assertEqual(
            set(scalars), {"loss", "learning_rate", "gradient_norm", "examples_per_second"})
        self.assertEqual([step for step, _ in scalars["loss"]], [2, 4])
        self.assertAllClose([v for _, v in scalars["loss"]],
                            [r["loss"] for r in read_metrics(self.model_dir)])

    def test_progress_bar_shows_loss_and_throughput(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.trainer.fit(make_dataset(), steps=4, verbose=1)
        self.assertIn("4/4", out.getvalue())
        self.assertIn("loss:", out.getvalue())
        self.assertIn("examples/s:", out.getvalue())

    def test_a_torn_last_line_is_skipped_and_resuming_drops_later_rows(self):
        self.trainer.fit(make_dataset(), steps=4, log_every=1, checkpoint_every=2, verbose=0)
        path = os.path.join(self.model_dir, METRICS_FILE)
        with open(path, "a") as f:
            f.write('{"step": 5, "loss": 0.1')  # a kill in the middle of a write
        self.assertEqual([r["step"] for r in read_metrics(self.model_dir)], [1, 2, 3, 4])
        # A run that restarts from step 2 (as if killed before saving step 4).
        os.remove(os.path.join(self.model_dir, "checkpoint"))
        with open(os.path.join(self.model_dir, "checkpoint"), "w") as f:
            f.write('model_checkpoint_path: "ckpt-2"\n')
        resumed = Trainer(build_model(), keras.losses.MeanSquaredError(),
                          keras.optimizers.SGD(self.schedule), model_dir=self.model_dir)
        resumed.fit(make_dataset(), steps=3, log_every=1, verbose=0)
        self.assertEqual([r["step"] for r in read_metrics(self.model_dir)], [1, 2, 3])
