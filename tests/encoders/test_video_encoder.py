import keras
import numpy as np

from mmzoo.encoders import FoldFrames
from mmzoo.encoders import FrameDifferences
from mmzoo.encoders import UnfoldFrames
from mmzoo.encoders import build_frame_video_encoder
from mmzoo.encoders import build_video_encoder
from mmzoo.encoders import build_vit_image_encoder
from mmzoo.testing import TestCase


class VideoEncoderTest(TestCase):
    def setUp(self):
        super().setUp()
        self.init_kwargs = {
            "num_frames": 4,
            "image_shape": (8, 8, 3),
            "tubelet_size": (2, 4, 4),
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 8,
            "intermediate_dim": 16,
        }
        self.input_data = np.random.RandomState(0).rand(2, 4, 8, 8, 3).astype("float32")

    def test_builder_basics(self):
        self.run_model_builder_test(
            build_video_encoder,
            self.init_kwargs,
            self.input_data,
            {"sequence_output": (2, 8, 8), "pooled_output": (2, 8)},
        )

    def test_saving(self):
        self.run_model_saving_test(build_video_encoder(**self.init_kwargs), self.input_data)

    def test_export(self):
        self.run_export_test(build_video_encoder(**self.init_kwargs), {"videos": self.input_data})

    def test_frame_differences(self):
        kwargs = {**self.init_kwargs, "frame_differences": True}
        self.run_model_builder_test(
            build_video_encoder,
            kwargs,
            self.input_data,
            {"sequence_output": (2, 8, 8), "pooled_output": (2, 8)},
        )
        encoder = build_video_encoder(**kwargs)
        # Each tubelet sees 3 colour channels and 3 difference channels.
        projection = encoder.get_layer("tubelet_embedding").projection
        self.assertEqual(tuple(projection.kernel.shape), (2, 4, 4, 6, 8))
        self.run_model_saving_test(encoder, self.input_data)

    def test_frame_differences_must_be_bool(self):
        with self.assertRaisesRegex(ValueError, "Received: frame_differences='yes'"):
            build_video_encoder(**{**self.init_kwargs, "frame_differences": "yes"})

    def test_frames_not_divisible_by_tubelet(self):
        with self.assertRaisesRegex(ValueError, "Received: num_frames=5"):
            build_video_encoder(**{**self.init_kwargs, "num_frames": 5})

    def test_heads_must_divide_hidden_dim(self):
        with self.assertRaisesRegex(ValueError, "Received: hidden_dim=8"):
            build_video_encoder(**{**self.init_kwargs, "num_heads": 3})

    def test_wrong_input_rank(self):
        encoder = build_video_encoder(**self.init_kwargs)
        with self.assertRaisesRegex(ValueError, r"(?s)'videos'.*incompatible.*shape=?\(2, 8, 8, 3\)"):
            encoder(self.input_data[:, 0])


class FrameVideoEncoderTest(TestCase):
    def setUp(self):
        super().setUp()
        self.image_encoder = build_vit_image_encoder(
            image_shape=(8, 8, 3), patch_size=4, num_layers=1, num_heads=2,
            hidden_dim=8, intermediate_dim=16,
        )
        self.init_kwargs = {
            "image_encoder": self.image_encoder,
            "num_frames": 3,
            "num_layers": 1,
            "num_heads": 2,
            "intermediate_dim": 16,
        }
        self.input_data = np.random.RandomState(0).rand(2, 3, 8, 8, 3).astype("float32")

    def test_builder_basics(self):
        # A fresh image encoder per build, so the training check owns its weights.
        def builder(dtype=None, **kwargs):
            image_encoder = build_vit_image_encoder(
                image_shape=(8, 8, 3), patch_size=4, num_layers=1, num_heads=2,
                hidden_dim=8, intermediate_dim=16, dtype=dtype,
            )
            return build_frame_video_encoder(**{**kwargs, "image_encoder": image_encoder}, dtype=dtype)

        self.run_model_builder_test(
            builder,
            self.init_kwargs,
            self.input_data,
            {"sequence_output": (2, 3, 8), "pooled_output": (2, 8)},
        )

    def test_frames_are_encoded_independently(self):
        encoder = build_frame_video_encoder(**self.init_kwargs)
        frame_features = self.image_encoder(self.input_data[:, 1])["pooled_output"]
        folded = keras.Model(encoder.input, encoder.get_layer("unfold_frames").output)
        self.assertAllClose(folded(self.input_data)[:, 1], frame_features, atol=1e-5)

    def test_frozen_image_encoder(self):
        self.image_encoder.trainable = False
        encoder = build_frame_video_encoder(**self.init_kwargs)
        frozen = {id(w) for w in self.image_encoder.weights}
        self.assertFalse(frozen & {id(w) for w in encoder.trainable_weights})
        self.assertNotEmpty(encoder.trainable_weights)

    def test_one_frame_is_an_image(self):
        encoder = build_frame_video_encoder(**{**self.init_kwargs, "num_frames": 1})
        out = encoder(self.input_data[:, :1])
        self.assertEqual(tuple(out["sequence_output"].shape), (2, 1, 8))

    def test_saving(self):
        self.run_model_saving_test(build_frame_video_encoder(**self.init_kwargs), self.input_data)

    def test_frame_differences(self):
        image_encoder = build_vit_image_encoder(
            image_shape=(8, 8, 6), patch_size=4, num_layers=1, num_heads=2,
            hidden_dim=8, intermediate_dim=16,
        )
        encoder = build_frame_video_encoder(
            **{**self.init_kwargs, "image_encoder": image_encoder, "frame_differences": True}
        )
        self.assertEqual(tuple(encoder.input.shape), (None, 3, 8, 8, 3))
        # Frame 2 is encoded together with its change from frame 1; frame 0
        # with zeros.
        folded = keras.Model(encoder.input, encoder.get_layer("unfold_frames").output)
        features = keras.ops.convert_to_numpy(folded(self.input_data))
        frames = self.input_data
        expected_2 = image_encoder(
            np.concatenate([frames[:, 2], frames[:, 2] - frames[:, 1]], axis=-1)
        )["pooled_output"]
        expected_0 = image_encoder(
            np.concatenate([frames[:, 0], np.zeros_like(frames[:, 0])], axis=-1)
        )["pooled_output"]
        self.assertAllClose(features[:, 2], expected_2, atol=1e-5)
        self.assertAllClose(features[:, 0], expected_0, atol=1e-5)
        self.run_model_saving_test(encoder, self.input_data)

    def test_frame_differences_need_even_channels(self):
        with self.assertRaisesRegex(ValueError, r"must be even.*Received: image_encoder with input shape \(None, 8, 8, 3\)"):
            build_frame_video_encoder(**{**self.init_kwargs, "frame_differences": True})

    def test_frame_differences_must_be_bool(self):
        with self.assertRaisesRegex(ValueError, "Received: frame_differences=1"):
            build_frame_video_encoder(**{**self.init_kwargs, "frame_differences": 1})

    def test_image_encoder_without_pooled_output(self):
        inputs = keras.Input((8, 8, 3))
        bad = keras.Model(inputs, {"features": keras.layers.Flatten()(inputs)})
        with self.assertRaisesRegex(ValueError, r"without `pooled_output`.*Received: output keys \['features'\]"):
            build_frame_video_encoder(**{**self.init_kwargs, "image_encoder": bad})

    def test_not_a_model(self):
        with self.assertRaisesRegex(ValueError, "Received: image_encoder='vit'"):
            build_frame_video_encoder(**{**self.init_kwargs, "image_encoder": "vit"})


class FoldFramesTest(TestCase):
    def test_fold_then_unfold_is_identity(self):
        x = np.random.RandomState(0).rand(2, 3, 4, 5).astype("float32")
        folded = FoldFrames()(x)
        self.assertEqual(tuple(folded.shape), (6, 4, 5))
        self.assertAllClose(folded[3], x[1, 0])
        self.assertAllClose(UnfoldFrames(3)(folded), x)

    def test_unfold_config(self):
        layer = UnfoldFrames(num_frames=4, name="u")
        self.assertEqual(UnfoldFrames.from_config(layer.get_config()).num_frames, 4)
        self.assertEqual(layer.compute_output_shape((8, 5)), (2, 4, 5))
        with self.assertRaisesRegex(ValueError, "Received: num_frames=0"):
            UnfoldFrames(num_frames=0)


class FrameDifferencesTest(TestCase):
    def test_differences_to_the_previous_frame(self):
        x = np.random.RandomState(0).rand(2, 3, 4, 4, 3).astype("float32")
        out = keras.ops.convert_to_numpy(FrameDifferences()(x))
        self.assertEqual(out.shape, (2, 3, 4, 4, 6))
        self.assertAllClose(out[..., :3], x)
        self.assertAllClose(out[:, 0, ..., 3:], np.zeros((2, 4, 4, 3)))
        self.assertAllClose(out[:, 1:, ..., 3:], x[:, 1:] - x[:, :-1])
        self.assertEqual(FrameDifferences().compute_output_shape((None, 3, 4, 4, 3)), (None, 3, 4, 4, 6))
