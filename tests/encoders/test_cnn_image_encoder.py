import os

import keras
import keras_hub
import numpy as np

from mmzoo.encoders import build_cnn_image_encoder
from mmzoo.encoders import build_conv_image_encoder
from mmzoo.presets import get_preset_config
from mmzoo.testing import TestCase

TINY_RESNET = get_preset_config("cnn_image_encoder_tiny")["backbone"]


class CNNImageEncoderTest(TestCase):
    def setUp(self):
        super().setUp()
        self.input_data = np.random.RandomState(0).rand(2, 32, 32, 3).astype("float32")

    def test_keras_hub_backbone_from_config(self):
        self.run_model_builder_test(
            build_cnn_image_encoder,
            {"backbone": TINY_RESNET, "image_shape": (32, 32, 3)},
            self.input_data,
            {"sequence_output": (2, 16, 64), "pooled_output": (2, 64)},
        )

    def test_keras_applications_backbone(self):
        encoder = build_cnn_image_encoder(
            "mobilenet_v3_small", image_shape=(32, 32, 3), weights=None
        )
        out = encoder(self.input_data)
        self.assertEqual(tuple(out["sequence_output"].shape), (2, 1, 576))
        self.assertEqual(tuple(out["pooled_output"].shape), (2, 576))

    def test_user_model_backbone(self):
        inputs = keras.Input((32, 32, 3))
        features = keras.layers.Conv2D(4, 3, strides=4, name="conv")(inputs)
        backbone = keras.Model(inputs, features)
        encoder = build_cnn_image_encoder(backbone, image_shape=(32, 32, 3), pooling="max")
        out = encoder(self.input_data)
        self.assertAllClose(
            out["pooled_output"], np.max(backbone(self.input_data), axis=(1, 2)), atol=1e-6
        )

    def test_keras_hub_preset_directory(self):
        # keras-hub's `from_preset` path, with a preset written here (no network):
        # weights and the preset's image converter are loaded.
        backbone = keras_hub.models.ResNetBackbone(**TINY_RESNET["config"], image_shape=(32, 32, 3))
        preset = os.path.join(self.get_temp_dir(), "tiny_resnet")
        backbone.save_to_preset(preset)
        mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
        converter = keras_hub.layers.ResNetImageConverter(
            image_size=(32, 32), scale=[1 / (255.0 * s) for s in std],
            offset=[-m / s for m, s in zip(mean, std)],
        )
        converter.save_to_preset(preset)

        encoder = build_cnn_image_encoder(preset, image_shape=(32, 32, 3), weights="preset")
        out = encoder(self.input_data)
        # The backbone sees the [0, 1] images standardised by the preset's mean/std.
        standardised = (self.input_data - np.array(mean)) / np.array(std)
        expected = np.asarray(backbone(standardised)).reshape(2, 16, 64)
        self.assertAllClose(out["sequence_output"], expected, atol=1e-4)

    def test_frozen_backbone(self):
        encoder = build_cnn_image_encoder(TINY_RESNET, image_shape=(32, 32, 3), trainable=False)
        self.assertEmpty(encoder.trainable_weights)
        self.assertNotEmpty(encoder.weights)

    def test_saving(self):
        encoder = build_cnn_image_encoder(TINY_RESNET, image_shape=(32, 32, 3))
        self.run_model_saving_test(encoder, self.input_data)

    def test_export(self):
        encoder = build_cnn_image_encoder(TINY_RESNET, image_shape=(32, 32, 3))
        self.run_export_test(encoder, {"images": self.input_data})

    def test_unknown_backbone_class(self):
        with self.assertRaisesRegex(ValueError, "Received: class_name='Dense'"):
            build_cnn_image_encoder({"class_name": "Dense", "config": {}}, image_shape=(32, 32, 3))

    def test_bad_backbone_type(self):
        with self.assertRaisesRegex(ValueError, "Received: backbone=3"):
            build_cnn_image_encoder(3)

    def test_bad_pooling(self):
        with self.assertRaisesRegex(ValueError, "Received: pooling='attention'"):
            build_cnn_image_encoder(TINY_RESNET, image_shape=(32, 32, 3), pooling="attention")

    def test_bad_image_shape(self):
        with self.assertRaisesRegex(ValueError, r"Received: image_shape=\(32, 32, 3, 1\)"):
            build_cnn_image_encoder(TINY_RESNET, image_shape=(32, 32, 3, 1))


class ConvImageEncoderTest(TestCase):
    def setUp(self):
        super().setUp()
        self.init_kwargs = {
            "image_shape": (16, 16, 3),
            "stackwise_num_filters": (4, 8, 6),
            "stackwise_num_strides": (1, 2, 2),
        }
        self.input_data = np.random.RandomState(0).rand(2, 16, 16, 3).astype("float32")

    def test_builder_basics(self):
        # 16x16 images, total stride 4: 4x4 positions of the last block's 6 channels.
        self.run_model_builder_test(
            build_conv_image_encoder,
            self.init_kwargs,
            self.input_data,
            {"sequence_output": (2, 16, 6), "pooled_output": (2, 6)},
        )

    def test_first_block_keeps_full_resolution(self):
        encoder = build_conv_image_encoder(**self.init_kwargs, name="conv")
        backbone = encoder.get_layer("conv_backbone")
        self.assertEqual(backbone.get_layer("conv_block_0_relu").output.shape, (None, 16, 16, 4))
        self.assertEqual(backbone.get_layer("conv_block_1_relu").output.shape, (None, 8, 8, 8))

    def test_odd_sizes_round_up(self):
        encoder = build_conv_image_encoder(
            image_shape=(10, 6, 1), stackwise_num_filters=(3,), stackwise_num_strides=(2,)
        )
        self.assertEqual(tuple(encoder.output["sequence_output"].shape), (None, 15, 3))

    def test_max_pooling(self):
        encoder = build_conv_image_encoder(**self.init_kwargs, pooling="max")
        out = encoder(self.input_data)
        self.assertAllClose(
            out["pooled_output"], np.max(out["sequence_output"], axis=1), atol=1e-6
        )

    def test_saving(self):
        encoder = build_conv_image_encoder(**self.init_kwargs)
        self.run_model_saving_test(encoder, self.input_data)

    def test_preset(self):
        encoder = get_preset_config("conv_image_encoder_tiny")
        self.assertEqual(encoder["image_shape"], (64, 64, 3))
        self.assertEqual(encoder["stackwise_num_strides"][0], 1)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(
            ValueError, r"same length. Received: stackwise_num_filters=\[4, 8\], "
            r"stackwise_num_strides=\[1\]"
        ):
            build_conv_image_encoder(stackwise_num_filters=(4, 8), stackwise_num_strides=(1,))
        with self.assertRaisesRegex(ValueError, r"Received: stackwise_num_filters=\[\]"):
            build_conv_image_encoder(stackwise_num_filters=(), stackwise_num_strides=())
        with self.assertRaisesRegex(ValueError, r"Received: stackwise_num_filters=\[4, 0\]"):
            build_conv_image_encoder(stackwise_num_filters=(4, 0), stackwise_num_strides=(1, 2))
        with self.assertRaisesRegex(ValueError, r"Received: stackwise_num_strides=\[1, 3\]"):
            build_conv_image_encoder(stackwise_num_filters=(4, 8), stackwise_num_strides=(1, 3))
        with self.assertRaisesRegex(ValueError, "Received: pooling='attention'"):
            build_conv_image_encoder(**self.init_kwargs, pooling="attention")
        with self.assertRaisesRegex(ValueError, r"Received: image_shape=\(16, 16\)"):
            build_conv_image_encoder(image_shape=(16, 16))
