import keras
import numpy as np

from mmzoo.layers import AttentionPooling
from mmzoo.testing import TestCase


class AttentionPoolingTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.RandomState(0)
        self.init_kwargs = {"num_heads": 2}
        self.inputs = rng.randn(2, 5, 8).astype("float32")
        self.padding_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)

    def test_layer_basics(self):
        self.run_layer_test(
            cls=AttentionPooling,
            init_kwargs=self.init_kwargs,
            input_data={"inputs": self.inputs, "padding_mask": self.padding_mask},
            expected_output_shape=(2, 8),
            expected_num_trainable_weights=11,  # query, norm (2), attention (8)
        )

    def test_several_queries(self):
        self.run_layer_test(
            cls=AttentionPooling,
            init_kwargs={"num_heads": 2, "num_queries": 3},
            input_data=self.inputs,
            expected_output_shape=(2, 3, 8),
            run_mixed_precision_check=False,
        )

    def test_padding_is_ignored(self):
        layer = AttentionPooling(**self.init_kwargs)
        base = layer(self.inputs, padding_mask=self.padding_mask)
        changed = self.inputs.copy()
        changed[0, 3:] = 100.0  # padded positions of the first example
        out = layer(changed, padding_mask=self.padding_mask)
        self.assertAllClose(out, base, atol=1e-5)
        # The mask matters: without it the change shows.
        self.assertNotAllClose(layer(changed), layer(self.inputs))

    def test_saving(self):
        inputs = keras.Input((5, 8))
        mask = keras.Input((5,), dtype="bool")
        model = keras.Model([inputs, mask], AttentionPooling(**self.init_kwargs)(inputs, padding_mask=mask))
        self.run_model_saving_test(model, [self.inputs, self.padding_mask])

    def test_heads_must_divide_hidden_dim(self):
        with self.assertRaisesRegex(ValueError, "divisible by `num_heads` \\(3\\).*Received: hidden_dim=8"):
            AttentionPooling(num_heads=3)(self.inputs)

    def test_wrong_rank(self):
        with self.assertRaisesRegex(ValueError, r"rank 3.*Received: inputs with shape \(2, 8\)"):
            AttentionPooling(num_heads=2)(np.zeros((2, 8), "float32"))
