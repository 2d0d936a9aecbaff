import numpy as np

from mmzoo.encoders import build_vit_image_encoder
from mmzoo.testing import TestCase


class ViTImageEncoderTest(TestCase):
    def setUp(self):
        super().setUp()
        self.init_kwargs = {
            "image_shape": (16, 16, 3),
            "patch_size": 8,
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 8,
            "intermediate_dim": 16,
        }
        self.input_data = np.random.RandomState(0).rand(2, 16, 16, 3).astype("float32")

    def test_builder_basics(self):
        self.run_model_builder_test(
            build_vit_image_encoder,
            self.init_kwargs,
            self.input_data,
            {"sequence_output": (2, 4, 8), "pooled_output": (2, 8)},
        )

    def test_attention_pooling(self):
        self.run_model_builder_test(
            build_vit_image_encoder,
            {**self.init_kwargs, "pooling": "attention"},
            self.input_data,
            {"sequence_output": (2, 4, 8), "pooled_output": (2, 8)},
            run_mixed_precision_check=False,
        )

    def test_mean_pooling_is_the_token_mean(self):
        encoder = build_vit_image_encoder(**self.init_kwargs)
        out = encoder(self.input_data)
        self.assertAllClose(out["pooled_output"], np.mean(out["sequence_output"], axis=1), atol=1e-6)

    def test_saving(self):
        encoder = build_vit_image_encoder(**self.init_kwargs, pooling="attention")
        self.run_model_saving_test(encoder, self.input_data)

    def test_export(self):
        encoder = build_vit_image_encoder(**self.init_kwargs)
        self.run_export_test(encoder, {"images": self.input_data})

    def test_image_not_divisible_by_patch_size(self):
        with self.assertRaisesRegex(ValueError, "`patch_size` \\(8\\).*Received: image height=20"):
            build_vit_image_encoder(**{**self.init_kwargs, "image_shape": (20, 16, 3)})

    def test_heads_must_divide_hidden_dim(self):
        with self.assertRaisesRegex(ValueError, "divisible by `num_heads` \\(3\\).*Received: hidden_dim=8"):
            build_vit_image_encoder(**{**self.init_kwargs, "num_heads": 3})

    def test_bad_image_shape(self):
        with self.assertRaisesRegex(ValueError, r"Received: image_shape=\(16, 16\)"):
            build_vit_image_encoder(**{**self.init_kwargs, "image_shape": (16, 16)})

    def test_bad_pooling(self):
        with self.assertRaisesRegex(ValueError, "Received: pooling='cls'"):
            build_vit_image_encoder(**{**self.init_kwargs, "pooling": "cls"})

    def test_wrong_input_rank(self):
        encoder = build_vit_image_encoder(**self.init_kwargs)
        with self.assertRaisesRegex(ValueError, r"(?s)name 'images'.*Expected shape \(None, 16, 16, 3\), but input has incompatible shape \(2, 16, 16\)"):
            encoder(np.zeros((2, 16, 16), "float32"))
