"""SimCLR's two-view pipeline: augmentation in the graph, deterministic under a seed."""

import keras
import numpy as np
import tensorflow as tf

from mmzoo import data
from mmzoo.losses import NTXentLoss
from mmzoo.presets import build_from_preset
from mmzoo.testing import TestCase


def image_examples(num=12, size=32, seed=0):
    rng = np.random.RandomState(seed)
    images = rng.rand(num, size, size, 3).astype("float32")
    return tf.data.Dataset.from_tensor_slices(
        {"images": images, "labels": np.arange(num, dtype="int32")}
    )


def first_batch(dataset):
    return {k: v.numpy() for k, v in next(iter(dataset)).items()}


class RandomResizedCropTest(TestCase):
    def test_crops_are_within_the_image_and_resized(self):
        # An image whose pixel value is its column: a crop's columns are a
        # contiguous, increasing range of the original's.
        columns = np.tile(np.linspace(0, 1, 64, dtype="float32")[None, :, None], (64, 1, 3))
        images = np.stack([columns] * 16)
        crop = data.RandomResizedCrop(16, 16, scale=(0.2, 0.5), seed=3)
        out = crop(images, training=True).numpy()
        self.assertEqual(out.shape, (16, 16, 16, 3))
        widths = out[:, 0, -1, 0] - out[:, 0, 0, 0]
        self.assertTrue(np.all(np.diff(out[:, 0, :, 0], axis=-1) >= -1e-6))
        # Area in [0.2, 0.5] with aspect ratios in [3/4, 4/3]: width fraction
        # in [sqrt(0.2 * 0.75), sqrt(0.5 * 4 / 3)], up to resampling.
        self.assertTrue(np.all(widths > np.sqrt(0.2 * 0.75) * 0.8))
        self.assertTrue(np.all(widths < np.sqrt(0.5 * 4 / 3) + 0.05))
        self.assertGreater(len(np.unique(np.round(widths, 3))), 8)  # random per image
        whole = crop(images, training=False).numpy()
        self.assertAllClose(whole[:, 0, 0, 0], np.zeros(16), atol=1e-6)
        self.assertAllClose(whole[:, 0, -1, 0], np.ones(16), atol=1e-6)

    def test_serialises_and_checks_arguments(self):
        crop = data.RandomResizedCrop(8, 12, scale=(0.3, 1.0), seed=1)
        restored = keras.layers.deserialize(keras.layers.serialize(crop))
        self.assertEqual(restored.get_config(), crop.get_config())
        with self.assertRaisesRegex(ValueError, r"Received: scale=\(0.0, 1.0\)"):
            data.RandomResizedCrop(8, 8, scale=(0.0, 1.0))
        with self.assertRaisesRegex(ValueError, r"Received: ratio=\(2.0, 1.0\)"):
            data.RandomResizedCrop(8, 8, ratio=(2.0, 1.0))


class TwoViewPipelineTest(TestCase):
    def test_two_different_views_of_each_image(self):
        batch = first_batch(data.two_view_pipeline(
            image_examples(), batch_size=4, shuffle_buffer=None, seed=0, deterministic=True,
        ))
        self.assertEqual(sorted(batch), ["view_1_images", "view_2_images"])
        for key in batch:
            self.assertEqual(batch[key].shape, (4, 32, 32, 3))
            self.assertEqual(batch[key].dtype, np.float32)
            self.assertBetween(float(batch[key].min()), 0.0, 1.0)
            self.assertBetween(float(batch[key].max()), 0.0, 1.0)
        self.assertGreater(np.abs(batch["view_1_images"] - batch["view_2_images"]).mean(), 1e-3)

    def test_deterministic_under_a_seed(self):
        def batches(seed):
            dataset = data.two_view_pipeline(image_examples(), batch_size=4, seed=seed,
                                              deterministic=True)
            return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(3)]

        first, again, other = batches(7), batches(7), batches(8)
        for a, b in zip(first, again):
            self.assertAllEqual(a["view_1_images"], b["view_1_images"])
            self.assertAllEqual(a["view_2_images"], b["view_2_images"])
        self.assertNotAllClose(first[0]["view_1_images"], other[0]["view_1_images"])

    def test_own_augmentation_and_evaluation_batches(self):
        flip = keras.layers.RandomFlip("horizontal", seed=0)
        dataset = data.two_view_pipeline(
            image_examples(num=5), batch_size=4, augmentation=flip, shuffle_buffer=None,
            repeat=False, deterministic=True,
        )
        batches = [{k: v.numpy() for k, v in b.items()} for b in dataset]
        self.assertLen(batches, 2)
        self.assertAllEqual(batches[1]["example_mask"], [1.0, 0.0, 0.0, 0.0])
        self.assertEqual(batches[0]["view_1_images"].shape, (4, 32, 32, 3))

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, "at least 2 examples per replica.*batch_size=1"):
            data.two_view_pipeline(image_examples(), batch_size=1)
        with self.assertRaisesRegex(ValueError, r"keys \['images'\]; \['images'\] missing"):
            data.two_view_pipeline(
                tf.data.Dataset.from_tensor_slices({"x": np.zeros((2, 3))}), batch_size=2
            )
        with self.assertRaisesRegex(ValueError, "Received: blur_rate=1.5"):
            data.simclr_augmentation(32, blur_rate=1.5)
        with self.assertRaisesRegex(ValueError, "Received: -1"):
            data.simclr_augmentation(32, color_strength=-1)

    def test_trains_the_two_view_preset(self):
        views = data.two_view_pipeline(image_examples(num=16), batch_size=8, seed=0)
        model = build_from_preset("dual_encoder_simclr_tiny")
        model.compile(optimizer="adam", loss=NTXentLoss(temperature=0.1))
        history = model.fit(views, steps_per_epoch=2, epochs=1, verbose=0)
        self.assertTrue(np.isfinite(history.history["loss"][-1]))
