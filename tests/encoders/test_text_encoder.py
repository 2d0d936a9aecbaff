import numpy as np

from mmzoo.encoders import build_text_encoder
from mmzoo.testing import TestCase


class TextEncoderTest(TestCase):
    def setUp(self):
        super().setUp()
        self.init_kwargs = {
            "vocabulary_size": 20,
            "sequence_length": 6,
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 8,
            "intermediate_dim": 16,
        }
        self.input_data = {
            "token_ids": np.array([[2, 5, 7, 3, 0, 0], [2, 9, 9, 9, 4, 3]], "int32"),
            "padding_mask": np.array([[1, 1, 1, 1, 0, 0], [1] * 6], bool),
        }

    def test_builder_basics(self):
        self.run_model_builder_test(
            build_text_encoder,
            self.init_kwargs,
            self.input_data,
            {"sequence_output": (2, 6, 8), "pooled_output": (2, 8)},
        )

    def test_attention_pooling(self):
        self.run_model_builder_test(
            build_text_encoder,
            {**self.init_kwargs, "pooling": "attention"},
            self.input_data,
            {"sequence_output": (2, 6, 8), "pooled_output": (2, 8)},
            run_mixed_precision_check=False,
        )

    def test_padding_does_not_change_real_tokens_or_pooling(self):
        for pooling in ("mean", "attention"):
            encoder = build_text_encoder(**self.init_kwargs, pooling=pooling)
            base = encoder(self.input_data)
            changed = dict(self.input_data, token_ids=self.input_data["token_ids"].copy())
            changed["token_ids"][0, 4:] = [11, 12]  # different ids under the padding
            out = encoder(changed)
            self.assertAllClose(out["sequence_output"][0, :4], base["sequence_output"][0, :4], atol=1e-5)
            self.assertAllClose(out["pooled_output"], base["pooled_output"], atol=1e-5)

    def test_mean_pooling_skips_padding(self):
        encoder = build_text_encoder(**self.init_kwargs)
        out = encoder(self.input_data)
        seq = np.asarray(out["sequence_output"])
        self.assertAllClose(out["pooled_output"][0], seq[0, :4].mean(axis=0), atol=1e-5)

    def test_saving(self):
        encoder = build_text_encoder(**self.init_kwargs, pooling="attention")
        self.run_model_saving_test(encoder, self.input_data)

    def test_export(self):
        encoder = build_text_encoder(**self.init_kwargs)
        self.run_export_test(encoder, self.input_data)

    def test_heads_must_divide_hidden_dim(self):
        with self.assertRaisesRegex(ValueError, "Received: hidden_dim=8"):
            build_text_encoder(**{**self.init_kwargs, "num_heads": 3})

    def test_bad_sequence_length(self):
        with self.assertRaisesRegex(ValueError, "Received: sequence_length=0"):
            build_text_encoder(**{**self.init_kwargs, "sequence_length": 0})

    def test_wrong_input_rank(self):
        encoder = build_text_encoder(**self.init_kwargs)
        with self.assertRaisesRegex(ValueError, r"(?s)name 'token_ids'.*Expected shape \(None, 6\), but input has incompatible shape \(2, 6, 1, 1\)"):
            encoder({"token_ids": np.zeros((2, 6, 1, 1), "int32"),
                     "padding_mask": self.input_data["padding_mask"]})
