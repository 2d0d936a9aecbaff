"""`optimizer_by_part`: each part of a model with its own optimizer, through
`model.fit` and the Trainer, resumed exactly."""

import os

import keras
import numpy as np
import tensorflow as tf

import mmzoo
from mmzoo.testing import TestCase
from mmzoo.testing.keras_hub_presets import save_contrastive_preset
from mmzoo.training import Trainer
from mmzoo.training import optimizer_by_part

TEXTS = ["a red circle", "a blue square", "a green triangle", "a red square"]


def weights(layer):
    return [v.numpy() for v in layer.weights]


def largest_change(before, after):
    return max(np.abs(a - b).max() for a, b in zip(before, after))


class OptimizerByPartTest(TestCase):
    def setUp(self):
        super().setUp()
        self.preset = save_contrastive_preset(
            os.path.join(self.get_temp_dir(), "clip"), "clip", texts=TEXTS
        )
        model = self.model()
        token_ids, padding_mask = model.preprocessor.tokenize_strings(TEXTS, "texts")
        rng = np.random.default_rng(0)
        self.data = {"images": rng.uniform(size=(4, 32, 32, 3)).astype("float32"),
                     "token_ids": token_ids, "padding_mask": padding_mask}

    def model(self):
        keras.utils.set_random_seed(0)
        return mmzoo.models.DualEncoder.from_keras_hub(self.preset)

    def dataset(self):
        return tf.data.Dataset.from_tensor_slices(self.data).batch(4, drop_remainder=True).repeat()

    def test_each_part_gets_its_optimizer_in_fit(self):
        model = self.model()
        # A keras-hub tower's variable paths do not start with the part's name.
        self.assertFalse(model.image_encoder.trainable_weights[0].path.startswith("image_encoder"))
        before = {name: weights(part) for name, part in model.parts().items()}
        optimizer = optimizer_by_part(
            model, {"image_encoder": keras.optimizers.SGD(0.0)},
            default=keras.optimizers.Adam(1e-2),
        )
        model.compile(optimizer=optimizer, loss=mmzoo.losses.CLIPLoss())
        model.fit(self.dataset(), steps_per_epoch=2, verbose=0)
        for name, part in model.parts().items():
            moved = largest_change(before[name], weights(part))
            if name == "image_encoder":
                self.assertEqual(moved, 0.0)  # its rate is 0
            else:
                self.assertGreater(moved, 1e-4, name)

    def test_trainer_resumes_exactly(self):
        def run(model_dir, steps):
            model = self.model()
            optimizer = optimizer_by_part(
                model,
                {"image_encoder": keras.optimizers.Adam(1e-4),
                 "text_encoder": keras.optimizers.Adam(1e-3)},
                default=keras.optimizers.Adam(1e-2),
            )
            trainer = Trainer(model, mmzoo.losses.CLIPLoss(), optimizer, model_dir=model_dir,
                              jit_compile=False)
            rows = trainer.fit(self.dataset(), steps=steps, checkpoint_every=2, log_every=1,
                               verbose=0)
            return model, rows

        resumed_dir, straight_dir = (os.path.join(self.get_temp_dir(), d) for d in "ab")
        _, rows = run(resumed_dir, 2)
        self.assertAllClose(rows[-1]["learning_rate"], 1e-4)  # the first optimizer's
        resumed, _ = run(resumed_dir, 4)
        straight, _ = run(straight_dir, 4)
        self.assertGreater(largest_change(weights(self.model()), weights(straight)), 1e-3)
        # The sub-optimizers' moments are in the checkpoint: exact resume.
        self.assertAllCloseNested(weights(resumed), weights(straight), atol=1e-6)

    def test_bad_arguments(self):
        model = self.model()
        adam = keras.optimizers.Adam()
        with self.assertRaisesRegex(ValueError, "image_encoder, text_encoder.*'vision'"):
            optimizer_by_part(model, {"vision": adam}, default=adam)
        with self.assertRaisesRegex(ValueError, "keras.optimizers.Optimizer.*image_encoder=0.1"):
            optimizer_by_part(model, {"image_encoder": 0.1}, default=adam)
        with self.assertRaisesRegex(ValueError, "non-empty dict"):
            optimizer_by_part(model, {}, default=adam)
        with self.assertRaisesRegex(ValueError, "mmzoo family model.*Sequential"):
            optimizer_by_part(keras.Sequential(), {"a": adam}, default=adam)
