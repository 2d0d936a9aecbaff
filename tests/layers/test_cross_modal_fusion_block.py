import keras
import numpy as np

from mmzoo.layers import CrossModalFusionBlock
from mmzoo.testing import TestCase


class CrossModalFusionBlockTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.RandomState(0)
        self.init_kwargs = {"num_heads": 2, "intermediate_dim": 16}
        self.input_data = {
            "inputs": rng.randn(2, 4, 8).astype("float32"),
            "context": rng.randn(2, 6, 12).astype("float32"),
            "padding_mask": np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool),
            "context_padding_mask": np.array([[1, 1, 0, 0, 0, 0], [1] * 6], bool),
        }

    def test_layer_basics(self):
        self.run_layer_test(
            cls=CrossModalFusionBlock,
            init_kwargs=self.init_kwargs,
            input_data=self.input_data,
            expected_output_shape=(2, 4, 8),
        )

    def test_without_masks(self):
        self.run_layer_test(
            cls=CrossModalFusionBlock,
            init_kwargs=self.init_kwargs,
            input_data={k: self.input_data[k] for k in ("inputs", "context")},
            expected_output_shape=(2, 4, 8),
            run_training_check=False,
            run_mixed_precision_check=False,
        )

    def test_context_padding_is_ignored(self):
        layer = CrossModalFusionBlock(**self.init_kwargs)
        base = layer(**self.input_data)
        changed = dict(self.input_data, context=self.input_data["context"].copy())
        changed["context"][0, 2:] = 50.0
        self.assertAllClose(layer(**changed), base, atol=1e-5)

    def test_query_padding_is_ignored_by_real_tokens(self):
        layer = CrossModalFusionBlock(**self.init_kwargs)
        base = np.asarray(layer(**self.input_data))
        changed = dict(self.input_data, inputs=self.input_data["inputs"].copy())
        changed["inputs"][0, 3] = 50.0  # the padded query token
        out = np.asarray(layer(**changed))
        self.assertAllClose(out[0, :3], base[0, :3], atol=1e-5)

    def test_attention_is_not_causal(self):
        layer = CrossModalFusionBlock(**self.init_kwargs)
        data = {k: self.input_data[k] for k in ("inputs", "context")}
        base = np.asarray(layer(**data))
        changed = dict(data, inputs=data["inputs"].copy())
        changed["inputs"][:, -1] += np.linspace(-1.0, 1.0, 8)
        self.assertGreater(np.abs(np.asarray(layer(**changed))[:, 0] - base[:, 0]).max(), 1e-4)

    def test_saving(self):
        x = keras.Input((4, 8))
        c = keras.Input((6, 12))
        m = keras.Input((4,), dtype="bool")
        cm = keras.Input((6,), dtype="bool")
        out = CrossModalFusionBlock(**self.init_kwargs)(x, c, padding_mask=m, context_padding_mask=cm)
        model = keras.Model([x, c, m, cm], out)
        d = self.input_data
        self.run_model_saving_test(model, [d["inputs"], d["context"], d["padding_mask"], d["context_padding_mask"]])

    def test_heads_must_divide_hidden_dim(self):
        with self.assertRaisesRegex(ValueError, r"divisible by `num_heads` \(3\).*Received: hidden_dim=8"):
            CrossModalFusionBlock(num_heads=3, intermediate_dim=16)(
                self.input_data["inputs"], self.input_data["context"]
            )

    def test_wrong_rank(self):
        with self.assertRaisesRegex(ValueError, r"rank 3.*Received: context with shape \(2, 12\)"):
            CrossModalFusionBlock(**self.init_kwargs)(self.input_data["inputs"], np.zeros((2, 12), "float32"))
